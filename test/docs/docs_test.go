// Package docs checks that the documentation's examples work as written:
// the TypeScript snippets type-check against the real rxjs and
// socket.io-client (TestTypeScriptSnippets), the predict commands of
// docs/API.md classify docs/examples/seven.png as a 7 on the real server
// (TestPredictCommands, TestSevenPNG), docs/examples/predict.py explains a
// missing NumPy (TestPredictPyWithoutNumPy), and the model files
// docs/PYTHON.md tells people to make are imported (TestImportLayouts).
//
// Every test reads the code out of the markdown, so a change to the docs is
// tested as it is written. Run it with `go test ./test/docs` (needs node and
// npm, curl, and a python3 with NumPy: /usr/bin/python3 on Debian with
// python3-numpy); without them the tests skip, under CI they fail.
// `go test -short` runs only TestSevenPNG and the extractor's own test.
package docs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// block is one fenced code block of a markdown file.
type block struct {
	File    string // the markdown file, relative to the module root
	Line    int    // the line of its first line of code, 1-based
	Lang    string // the info string's first word: ts, sh, python, …
	Heading string // the nearest heading above it, without the #s
	Marker  string // an HTML comment on the line just before the fence, if any
	Code    string
}

func (b block) String() string { return fmt.Sprintf("%s:%d (```%s)", b.File, b.Line, b.Lang) }

// blocks returns the fenced code blocks of md in order. Fences are ``` at
// the start of a line; an HTML comment on the non-blank line just above
// the opening fence is kept as the block's marker.
func blocks(name, md string) []block {
	var out []block
	var cur *block
	var code []string
	heading, prev := "", ""
	for i, line := range strings.Split(md, "\n") {
		if cur != nil {
			if strings.TrimRight(line, " ") == "```" {
				cur.Code = strings.Join(code, "\n") + "\n"
				out = append(out, *cur)
				cur, code = nil, nil
			} else {
				code = append(code, line)
			}
			continue
		}
		if info, ok := strings.CutPrefix(line, "```"); ok {
			lang, _, _ := strings.Cut(strings.TrimSpace(info), " ")
			cur = &block{File: name, Line: i + 2, Lang: lang, Heading: heading}
			if strings.HasPrefix(prev, "<!--") && strings.HasSuffix(prev, "-->") {
				cur.Marker = prev
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
		if strings.TrimSpace(line) != "" {
			prev = strings.TrimSpace(line)
		}
	}
	return out
}

// docBlocks returns the code blocks of docs/<name> in language lang.
func docBlocks(t *testing.T, name, lang string) []block {
	t.Helper()
	rel := filepath.Join("docs", name)
	md, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	for _, b := range blocks(filepath.ToSlash(rel), string(md)) {
		if b.Lang == lang {
			out = append(out, b)
		}
	}
	return out
}

// sectionBlock returns the one block in language lang under the heading
// heading of docs/<name>.
func sectionBlock(t *testing.T, name, heading, lang string) block {
	t.Helper()
	var found []block
	for _, b := range docBlocks(t, name, lang) {
		if b.Heading == heading {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/%s: want one ```%s block under the heading %q, found %d: the test follows the docs' layout", name, lang, heading, len(found))
	}
	return found[0]
}

// shellCommands splits a ```sh block into its commands: a line ending in \
// continues on the next, comment lines and blank lines are dropped.
func shellCommands(code string) []string {
	var cmds []string
	var cur strings.Builder
	for line := range strings.SplitSeq(code, "\n") {
		if cur.Len() == 0 && (strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#")) {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		cmds = append(cmds, strings.TrimSpace(cur.String()))
		cur.Reset()
	}
	return cmds
}

func TestBlocks(t *testing.T) {
	md := "# A\n\ntext\n\n<!-- ts: no-check: partial -->\n\n```ts\nlet a = 1;\n```\n## `POST /x`\n```sh\n# a comment\ncurl -s $B/x \\\n     -d '{}'\n\ncurl $B/y   # two\n```\n"
	bs := blocks("x.md", md)
	if len(bs) != 2 {
		t.Fatalf("got %d blocks: %+v", len(bs), bs)
	}
	if b := bs[0]; b.Lang != "ts" || b.Line != 8 || b.Heading != "A" || b.Marker != "<!-- ts: no-check: partial -->" || b.Code != "let a = 1;\n" {
		t.Errorf("first block %+v", b)
	}
	if b := bs[1]; b.Lang != "sh" || b.Heading != "`POST /x`" || b.Marker != "" {
		t.Errorf("second block %+v", b)
	}
	want := []string{`curl -s $B/x      -d '{}'`, `curl $B/y   # two`}
	if got := shellCommands(bs[1].Code); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// e2e starts what an end-to-end test of this suite needs first: not with
// -short, one suite at a time.
func e2e(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("docs examples: run the real server and tools; skipped with -short")
	}
	start := time.Now()
	testenv.Serial(t)
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %v for other end-to-end suites to finish", d.Round(time.Second))
	}
}

// server is the real server binary on a free loopback port.
type server struct {
	URL   string
	mnist chan struct{} // closed once the server logs "MNIST loaded"
}

func startServer(t *testing.T) *server {
	t.Helper()
	bin := testenv.ServerBinary(t)
	port := testenv.FreePort(t)
	s := &server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), mnist: make(chan struct{})}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "MODELS_DIR="+t.TempDir(), "LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "MNIST loaded" {
				once.Do(func() { close(s.mnist) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("server did not stop within 15 s of SIGTERM")
		}
	})
	if !testutil.Poll(15*time.Second, 20*time.Millisecond, func() bool {
		var resp *http.Response
		if resp, err = http.Get(s.URL + "/api/status"); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("server not answering: %v", err)
	}
	select {
	case <-s.mnist:
	case <-time.After(60 * time.Second): // a guard against a hang, not a wait
		t.Fatal(`the server did not log "MNIST loaded" within 60 s`)
	}
	return s
}

// call sends a request and decodes the JSON answer into out, failing the
// test unless the status is 200.
func (s *server) call(t *testing.T, method, path, contentType string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, data)
	}
}

// trainedNetwork creates a [784, 30, 10] network and trains it for three
// seeded epochs (about 93% of the test set right), returning its id.
func (s *server) trainedNetwork(t *testing.T) string {
	t.Helper()
	var created struct {
		NetworkID string `json:"network_id"`
	}
	s.call(t, "POST", "/api/networks", "application/json", []byte(`{"layer_sizes":[784,30,10],"seed":42}`), &created)
	var started struct {
		JobID string `json:"job_id"`
	}
	s.call(t, "POST", "/api/networks/"+created.NetworkID+"/train", "application/json",
		[]byte(`{"epochs":3,"mini_batch_size":10,"learning_rate":3.0,"seed":1}`), &started)
	var status string
	if !testutil.Poll(90*time.Second, 100*time.Millisecond, func() bool {
		var job struct {
			Status   string  `json:"status"`
			Accuracy float64 `json:"accuracy"`
			Error    string  `json:"error"`
		}
		s.call(t, "GET", "/api/training/"+started.JobID, "", nil, &job)
		status = job.Status
		switch job.Status {
		case "completed":
			t.Logf("network %s trained: accuracy %.4f", created.NetworkID, job.Accuracy)
			return true
		case "failed", "cancelled":
			t.Fatalf("training %s: %s", job.Status, job.Error)
		}
		return false
	}) {
		t.Fatalf("training still %s after 90 s", status)
	}
	return created.NetworkID
}

// numpyPython returns a Python interpreter that can import NumPy: python3
// on PATH, else /usr/bin/python3 (the one Debian's python3-numpy serves; a
// python3 on PATH may be a pyenv or virtual environment without it). Like
// testenv.Tool it skips without one, and fails under CI.
func numpyPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import numpy").Run() == nil {
			return py
		}
	}
	testutil.SkipOrFail(t, "no python3 with NumPy is installed (apt-get install python3-numpy)")
	return ""
}
