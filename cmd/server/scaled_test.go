package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/internal/pgtest"
)

// replica is a server run by run() in scaled mode.
type replica struct {
	url  string
	logs *lockedBuffer
}

// startReplica runs a replica with env until the test ends, and waits
// until it answers.
func startReplica(t *testing.T, env map[string]string) *replica {
	t.Helper()
	port := testutil.FreePort(t)
	r := &replica{url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &lockedBuffer{}}
	env["PORT"] = fmt.Sprint(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics", "off"}, envOf(env), r.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replica %s: %v", r.url, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("replica %s did not stop within 30 s", r.url)
		}
	})
	r.waitUp(t, done, "the replica")
	return r
}

// waitUp waits until the server at r.url answers /api/status, failing
// the test if it has not within 30 s or if run returns first (on done).
func (r *replica) waitUp(t *testing.T, done <-chan error, what string) {
	t.Helper()
	if !testutil.Poll(30*time.Second, 10*time.Millisecond, func() bool {
		if resp, err := http.Get(r.url + "/api/status"); err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("%s stopped: %v\n%s", what, err, r.logs)
		default:
		}
		return false
	}) {
		t.Fatalf("%s did not answer within 30 s\n%s", what, r.logs)
	}
}

// call sends a JSON request and decodes the answer into out (if not nil).
func (r *replica) call(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, b.String(), want)
	}
	if out != nil {
		if err := json.Unmarshal(b.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b.String())
		}
	}
}

// TestDeleteEvictsEverywhere: a network deleted through one replica is
// dropped at once by another that had it loaded, without waiting for its
// next use (service.Replicas through the relay, and Forget).
func TestDeleteEvictsEverywhere(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir() // the models, shared as a volume would be
	a := startReplica(t, map[string]string{"DATABASE_URL": url, "MODELS_DIR": dir})
	b := startReplica(t, map[string]string{"DATABASE_URL": url, "MODELS_DIR": dir, "LOG_LEVEL": "debug"})
	// A removal is a notification, not a stored event: b must be listening
	// before the delete is sent.
	testutil.Eventually(t, 30*time.Second, "b's relay to listen", func() bool {
		return strings.Contains(b.logs.String(), "event relay: listening")
	})

	var created struct {
		NetworkID string `json:"network_id"`
	}
	a.call(t, "POST", "/api/networks", `{"layer_sizes":[784,10]}`, 200, &created)
	id := created.NetworkID
	pixels, _ := json.Marshal(map[string][]float64{"pixels": make([]float64, 784)})
	b.call(t, "POST", "/api/networks/"+id+"/predict", string(pixels), 200, nil) // loaded on b
	var status struct {
		ActiveNetworks int `json:"active_networks"`
	}
	b.call(t, "GET", "/api/status", "", 200, &status)
	if status.ActiveNetworks != 1 {
		t.Fatalf("b holds %d networks, want the one", status.ActiveNetworks)
	}

	start := time.Now()
	a.call(t, "DELETE", "/api/networks/"+id, "", 200, nil)
	if !testutil.Poll(30*time.Second, testutil.Every, func() bool {
		b.call(t, "GET", "/api/status", "", 200, &status)
		return status.ActiveNetworks == 0
	}) {
		t.Fatalf("b still holds the deleted network 30 s after the delete\n%s", b.logs)
	}
	t.Logf("b dropped the network %v after the delete was sent to a", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(b.logs.String(), "deleted on another replica") {
		t.Errorf("b did not log the drop:\n%s", b.logs)
	}
}

// TestFrozenPostgresAnswers503: with Postgres frozen (SIGSTOP), requests
// that need it answer 503 within about DB_TIMEOUT instead of waiting for
// the server; liveness stays 200 and says the database is unavailable;
// readiness is 503. Once thawed, the replica answers as before.
func TestFrozenPostgresAnswers503(t *testing.T) {
	p := pgtest.Start(t)
	r := startReplica(t, map[string]string{"DATABASE_URL": p.URL(), "MODELS_DIR": t.TempDir(), "DB_TIMEOUT": "1s"})
	r.call(t, "GET", "/api/networks", "", 200, nil)
	r.call(t, "GET", "/api/ready", "", 200, nil)

	p.Freeze(t)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/networks", 503},
		{"/api/ready", 503},
		{"/api/status", 200},
	} {
		start := time.Now()
		type answer struct {
			status int
			body   map[string]any
			err    error
		}
		done := make(chan answer, 1)
		go func() {
			var a answer
			resp, err := http.Get(r.url + tc.path)
			if err != nil {
				done <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			a.status, a.err = resp.StatusCode, json.NewDecoder(resp.Body).Decode(&a.body)
			done <- a
		}()
		var a answer
		select {
		case a = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("GET %s hangs with Postgres frozen", tc.path)
		}
		t.Logf("GET %s with Postgres frozen: %d after %v: %v", tc.path, a.status, time.Since(start).Round(time.Millisecond), a.body)
		if a.err != nil || a.status != tc.want {
			t.Errorf("GET %s: %d, %v; want %d", tc.path, a.status, a.err, tc.want)
		}
		if tc.path == "/api/status" && a.body["database"] != "unavailable" {
			t.Errorf("status says database %v, want unavailable", a.body["database"])
		}
	}

	p.Thaw()
	if !testutil.Poll(30*time.Second, 50*time.Millisecond, func() bool {
		resp, err := http.Get(r.url + "/api/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatal("not ready 30 s after the thaw")
	}
	r.call(t, "GET", "/api/networks", "", 200, nil)
}

// send is call with request headers ("Name: value"); it returns the status
// and the decoded body.
func (r *replica) send(t *testing.T, method, path, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// TestOwnershipAcrossReplicas: two replicas on one Postgres. With
// OWNERSHIP=on and ADMIN_TOKEN, a network created on one can be changed
// through the other only with its owner token (kept as a hash in the
// catalog and the model file) or the admin token; with both off, by
// anyone, and the answers only gain owner_token.
func TestOwnershipAcrossReplicas(t *testing.T) {
	const admin = "admin-token-of-the-replicas"
	for _, tc := range []struct {
		name string
		env  map[string]string
		// statuses on replica b of: delete without a token, with another
		// network's token, delete all without a token
		anon, wrong, anonAll int
	}{
		{"both off", map[string]string{}, 200, 200, 200},
		{"both on", map[string]string{"OWNERSHIP": "on", "ADMIN_TOKEN": admin}, 401, 403, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			dir := t.TempDir()
			env := func() map[string]string {
				e := map[string]string{"DATABASE_URL": url, "MODELS_DIR": dir}
				for k, v := range tc.env {
					e[k] = v
				}
				return e
			}
			a, b := startReplica(t, env()), startReplica(t, env())
			create := func() (id, token string) {
				status, m := a.send(t, "POST", "/api/networks", `{"layer_sizes":[784,10]}`)
				id, _ = m["network_id"].(string)
				token, _ = m["owner_token"].(string)
				if status != 200 || id == "" || len(token) != 43 {
					t.Fatalf("create on a: %d %v", status, m)
				}
				return id, token
			}
			x, tokX := create()
			y, tokY := create()
			z, _ := create()
			if status, m := b.send(t, "DELETE", "/api/networks/"+x, ""); status != tc.anon {
				t.Errorf("delete on b without a token: %d %v, want %d", status, m, tc.anon)
			}
			if status, m := b.send(t, "DELETE", "/api/networks/"+z, "", "X-Owner-Token: "+tokX); status != tc.wrong {
				t.Errorf("delete on b with another's token: %d %v, want %d", status, m, tc.wrong)
			}
			status, m := b.send(t, "POST", "/api/networks/"+y+"/train", `{"epochs":1}`, "Authorization: Bearer "+tokY)
			if status != 200 {
				t.Fatalf("train on b with the owner token made on a: %d %v", status, m)
			}
			// The job ends before anything else: none is left running
			// when the replicas stop.
			job, _ := m["job_id"].(string)
			if !testutil.Poll(2*time.Minute, testutil.Every, func() bool {
				_, j := a.send(t, "GET", "/api/training/"+job, "")
				return j["status"] == "completed"
			}) {
				t.Fatalf("the job %s did not complete within 2 minutes", job)
			}
			if status, m := b.send(t, "DELETE", "/api/networks", ""); status != tc.anonAll {
				t.Errorf("delete all on b without a token: %d %v, want %d", status, m, tc.anonAll)
			}
			if tc.anon == 200 {
				return // all gone
			}
			if status, m := b.send(t, "DELETE", "/api/networks/"+x, "", "X-Owner-Token: "+tokX); status != 200 {
				t.Errorf("delete on b with the owner token made on a: %d %v", status, m)
			}
			if status, m := b.send(t, "DELETE", "/api/networks/"+z, "", "Authorization: Bearer "+admin); status != 200 {
				t.Errorf("delete on b with the admin token: %d %v", status, m)
			}
			if status, m := b.send(t, "DELETE", "/api/networks", "", "Authorization: Bearer "+admin); status != 200 || m["deleted_count"] != 1.0 {
				t.Errorf("delete all on b with the admin token: %d %v, want y deleted", status, m)
			}
			for _, r := range []*replica{a, b} {
				for _, secret := range []string{tokX, tokY, admin} {
					if strings.Contains(r.logs.String(), secret) {
						t.Errorf("replica %s logged a token", r.url)
					}
				}
			}
		})
	}
}
