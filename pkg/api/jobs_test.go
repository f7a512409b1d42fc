package api_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// listed is an answer of GET /api/training.
type listed struct {
	Jobs []struct {
		JobID      string  `json:"job_id"`
		NetworkID  string  `json:"network_id"`
		Status     string  `json:"status"`
		Epochs     int     `json:"epochs"`
		CreatedAt  string  `json:"created_at"`
		StartedAt  *string `json:"started_at"`
		FinishedAt *string `json:"finished_at"`
	} `json:"jobs"`
	NextCursor *string `json:"next_cursor"`
}

func (s *server) list(t *testing.T, query string) (listed, response) {
	t.Helper()
	r := s.do(t, "GET", "/api/training"+query, "", "")
	var l listed
	if r.status == 200 {
		if err := json.Unmarshal([]byte(r.body), &l); err != nil {
			t.Fatalf("GET /api/training%s: %v: %s", query, err, r.body)
		}
	}
	return l, r
}

// listAll follows next_cursor from the first page of query to the last,
// and returns the job ids in order.
func (s *server) listAll(t *testing.T, query string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		l, r := s.list(t, "?"+strings.TrimPrefix(q, "&"))
		if r.status != 200 {
			t.Fatalf("GET /api/training?%s: %d %s", q, r.status, r.body)
		}
		for _, j := range l.Jobs {
			ids = append(ids, j.JobID)
		}
		if l.NextCursor == nil {
			return ids
		}
		cursor = *l.NextCursor
	}
	t.Fatalf("GET /api/training?%s: more than 100 pages", query)
	return nil
}

// TestJobList: GET /api/training lists jobs newest first, by network and
// status, a page at a time, each as GET /api/training/{id} has it but its
// history; bad parameters are 400s naming the rule.
func TestJobList(t *testing.T) {
	s := newServer(t) // one worker
	netA, netB := s.createNetwork(t), s.createNetwork(t)
	train := func(net, body string) string {
		r := s.do(t, "POST", "/api/networks/"+net+"/train", jsonCT, body)
		if r.status != 200 {
			t.Fatalf("train: %d %s", r.status, r.body)
		}
		return r.json(t)["job_id"].(string)
	}
	a1 := train(netA, `{"epochs": 1000}`) // trains while the test runs
	a2 := train(netA, `{"epochs": 1}`)    // waits for a1, on the same network
	b1 := train(netB, `{"epochs": 2}`)    // waits for the one worker
	b2 := train(netB, `{"epochs": 3}`)
	if r := s.do(t, "POST", "/api/training/"+b2+"/cancel", "", ""); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	testutil.Eventually(t, 30*time.Second, "the first job to train", func() bool {
		return s.do(t, "GET", "/api/training/"+a1, "", "").json(t)["status"] == "training"
	})

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{b2, b1, a2, a1}},
		{"limit=1", []string{b2, b1, a2, a1}},
		{"limit=3", []string{b2, b1, a2, a1}},
		{"limit=100", []string{b2, b1, a2, a1}},
		{"network_id=" + netA, []string{a2, a1}},
		{"network_id=" + netB + "&limit=1", []string{b2, b1}},
		{"network_id=00000000-0000-4000-8000-000000000000", nil},
		{"status=pending", []string{b1, a2}},
		{"status=training", []string{a1}},
		{"status=cancelled", []string{b2}},
		{"status=completed,failed", nil},
		{"status=pending,training&limit=2", []string{b1, a2, a1}},
		{"status=pending&status=cancelled", []string{b2, b1, a2}},
		{"status=pending,%20training,pending", []string{b1, a2, a1}},
		{"status=pending,cancelled&network_id=" + netB, []string{b2, b1}},
		{"unknown=ignored", []string{b2, b1, a2, a1}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := s.listAll(t, tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("GET /api/training?%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}

	// A listed job: the job's fields, its times, no history.
	l, r := s.list(t, "?network_id="+netA)
	if strings.Contains(r.body, `"history"`) || len(l.Jobs) != 2 {
		t.Fatalf("list: %s", r.body)
	}
	running, waiting := l.Jobs[1], l.Jobs[0]
	if running.JobID != a1 || running.NetworkID != netA || running.Epochs != 1000 || running.CreatedAt == "" ||
		running.StartedAt == nil || running.FinishedAt != nil {
		t.Errorf("the running job: %+v", running)
	}
	if waiting.StartedAt != nil || waiting.FinishedAt != nil {
		t.Errorf("the waiting job: %+v", waiting)
	}
	var one, all map[string]any
	json.Unmarshal([]byte(s.do(t, "GET", "/api/training/"+a2, "", "").body), &one)
	json.Unmarshal([]byte(r.body), &all)
	item := all["jobs"].([]any)[0].(map[string]any)
	for k, v := range one {
		if k != "history" && !equalJSON(item[k], v) {
			t.Errorf("%s: listed %v, GET /api/training/{id} %v", k, item[k], v)
		}
	}

	for _, tc := range []struct{ query, msg string }{
		{"limit=0", "limit must be an integer between 1 and 100"},
		{"limit=101", "limit must be an integer between 1 and 100"},
		{"limit=ten", "limit must be an integer between 1 and 100"},
		{"limit=", "limit must be an integer between 1 and 100"},
		{"status=", "status must be one or more of pending, training, completed, failed, cancelled, separated by commas"},
		{"status=done", "status must be one or more of"},
		{"status=pending,", "status must be one or more of"},
		{"status=PENDING", "status must be one or more of"},
		{"status=" + strings.Repeat("pending,", 9), "status must be one or more of"},
		{"network_id=abc", "network_id must be a network id (a lowercase UUID)"},
		{"network_id=" + strings.ToUpper(netA), "network_id must be a network id"},
		{"cursor=", "cursor must be a next_cursor this server answered"},
		{"cursor=!!!", "cursor must be a next_cursor this server answered"},
		{"cursor=AAAAAAAAAAA", "cursor must be a next_cursor this server answered"},
		{"cursor=gAAAAAAAAAA", "cursor must be a next_cursor this server answered"},
		{"cursor=AAAAAAAAAAAB", "cursor must be a next_cursor this server answered"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, r := s.list(t, "?"+tc.query)
			if msg, _ := r.json(t)["error"].(string); r.status != 400 || !strings.HasPrefix(msg, tc.msg) {
				t.Errorf("GET /api/training?%s: %d %s, want 400 %q", tc.query, r.status, r.body, tc.msg)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
