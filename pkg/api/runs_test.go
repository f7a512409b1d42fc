package api_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestNamesOnTheWire: name and notes on create, PATCH and import, in every
// answer that lists networks, each bounded (one past its bound is a 400
// naming the rule) and typed.
func TestNamesOnTheWire(t *testing.T) {
	s := newServer(t)
	r := s.do(t, "POST", "/api/networks", jsonCT, `{"layer_sizes":[784,10],"name":"ch. 1 — η 3","notes":"line one\nline two"}`)
	if r.status != 200 || !strings.Contains(r.body, `"name":"ch. 1 — η 3"`) || !strings.Contains(r.body, `"notes":"line one\nline two"`) {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["network_id"].(string)
	for _, path := range []string{"/api/networks", "/api/networks/" + id} {
		if r := s.do(t, "GET", path, "", ""); r.status != 200 || !strings.Contains(r.body, `"name":"ch. 1 — η 3"`) {
			t.Errorf("GET %s: %d %.300s", path, r.status, r.body)
		}
	}
	if r := s.do(t, "PATCH", "/api/networks/"+id, jsonCT, `{"name":"renamed"}`); r.status != 200 ||
		!strings.Contains(r.body, `"name":"renamed"`) || !strings.Contains(r.body, `"notes":"line one\nline two"`) {
		t.Errorf("PATCH name: %d %s", r.status, r.body)
	}
	long := func(n int) string { return strings.Repeat("é", n) }
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/api/networks", `{"name":"` + long(101) + `"}`, 400, "name must be a string of at most 100 characters on one line"},
		{"POST", "/api/networks", `{"notes":"` + long(2001) + `"}`, 400, "notes must be a string of at most 2000 characters"},
		{"POST", "/api/networks", `{"name":7}`, 400, "name must be"},
		{"POST", "/api/networks", `{"name":null}`, 400, "name must be"},
		{"PATCH", "/api/networks/" + id, `{"name":"` + long(101) + `"}`, 400, "name must be"},
		{"PATCH", "/api/networks/" + id, `{"name":"tab\tinside"}`, 400, "name must be"},
		{"PATCH", "/api/networks/" + id, `{"notes":"` + long(2001) + `"}`, 400, "notes must be"},
		{"PATCH", "/api/networks/" + id, `{"colour":"red"}`, 400, `the body needs \"name\", \"notes\" or both`},
		{"PATCH", "/api/networks/" + id, ``, 400, `the body needs \"name\", \"notes\" or both`},
		{"PATCH", "/api/networks/" + id, `{"name":"` + long(100) + `","notes":"` + long(2000) + `"}`, 200, `"name":"` + long(100)},
		{"PATCH", "/api/networks/00000000-0000-4000-8000-000000000000", `{"name":"x"}`, 404, "Network not found"},
		{"PATCH", "/api/networks/not-a-uuid", `{"name":"x"}`, 404, "Network not found"},
	} {
		if r := s.do(t, tc.method, tc.path, jsonCT, tc.body); r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s %s %.40s: %d %.200s; want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}

	// An import keeps the file's name, or takes the one given.
	file := s.do(t, "GET", "/api/networks/"+id+"/download", "", "").body
	if r := s.do(t, "POST", "/api/networks/import", "application/octet-stream", file); r.status != 200 || !strings.Contains(r.body, `"name":"`+long(100)+`"`) {
		t.Errorf("import keeping the name: %d %.200s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/api/networks/import?name="+url.QueryEscape("given ✓"), "application/octet-stream", file); r.status != 200 || !strings.Contains(r.body, `"name":"given ✓"`) {
		t.Errorf("import with a name: %d %.200s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/api/networks/import?notes="+url.QueryEscape(long(2001)), "application/octet-stream", file); r.status != 400 || !strings.Contains(r.body, "notes must be") {
		t.Errorf("import with notes of 2001 characters: %d %.200s", r.status, r.body)
	}
}

// TestRunOptionsOnTheWire: the train options, the restore body and the
// snapshot download refuse what breaks their rules, each bound tested one
// past it.
func TestRunOptionsOnTheWire(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/api/networks/" + id + "/train", `{"stop_after_no_improvement":0}`, 400, "stop_after_no_improvement must be an integer between 1 and 1000"},
		{"POST", "/api/networks/" + id + "/train", `{"stop_after_no_improvement":1001}`, 400, "stop_after_no_improvement must be"},
		{"POST", "/api/networks/" + id + "/train", `{"stop_after_no_improvement":2.5}`, 400, "stop_after_no_improvement must be"},
		{"POST", "/api/networks/" + id + "/train", `{"restore_best":1}`, 400, "restore_best must be true or false"},
		{"POST", "/api/networks/" + id + "/restore", `{}`, 400, `the body needs \"epoch\" (a snapshot's epoch) or \"best\": true, not both`},
		{"POST", "/api/networks/" + id + "/restore", `{"best":false}`, 400, "best must be true"},
		{"POST", "/api/networks/" + id + "/restore", `{"epoch":0}`, 400, "epoch must be an integer between 1 and 100000"},
		{"POST", "/api/networks/" + id + "/restore", `{"epoch":100001}`, 400, "epoch must be"},
		{"POST", "/api/networks/" + id + "/restore", `{"epoch":100000}`, 404, "the network keeps no snapshot of epoch 100000"},
		{"POST", "/api/networks/" + id + "/restore", `{"best":true}`, 404, "no snapshot with a validation accuracy"},
		{"GET", "/api/networks/" + id + "/download?epoch=x", "", 400, "epoch must be an integer between 1 and 100000"},
		{"GET", "/api/networks/" + id + "/download?epoch=100001", "", 400, "epoch must be"},
		{"GET", "/api/networks/" + id + "/download?epoch=1", "", 404, "the network keeps no snapshot of epoch 1"},
		{"GET", "/api/networks/" + id + "/snapshots", "", 200, `"snapshots":[],"best_epoch":null,"snapshots_kept":5`},
	} {
		if r := s.do(t, tc.method, tc.path, jsonCT, tc.body); r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s %s %s: %d %.200s; want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
}

// TestPatchPreflight: a page on another origin may rename a network: the
// preflight of a PATCH allows it.
func TestPatchPreflight(t *testing.T) {
	s := newServer(t)
	req := httptest.NewRequest("OPTIONS", "/api/networks/"+s.createNetwork(t), nil)
	req.Header.Set("Origin", "http://localhost:4200")
	req.Header.Set("Access-Control-Request-Method", "PATCH")
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-owner-token")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	if w.Code != 204 || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "PATCH") {
		t.Errorf("preflight of a PATCH: %d %v", w.Code, w.Header())
	}
}
