package scale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// docBlock returns the one fenced code block of the Markdown file at path
// (relative to the module's root) whose first line is first.
func docBlock(t *testing.T, path, first string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	var cur *bytes.Buffer
	fence := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(strings.TrimSpace(line), "```"):
			fence = line[:strings.Index(line, "```")+3]
			cur = &bytes.Buffer{}
		case cur != nil && strings.TrimSpace(line) == "```" && strings.HasPrefix(line, fence):
			if strings.HasPrefix(cur.String(), first) {
				blocks = append(blocks, cur.Bytes())
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if len(blocks) != 1 {
		t.Fatalf("%s has %d code blocks beginning %q, want 1", path, len(blocks), first)
	}
	return blocks[0]
}

var (
	trainEpochLine = regexp.MustCompile(`^epoch (\d+)/3: (\d+\.\d\d)% \((\d+)/10000\) in \d+\.\d\d s, \d+%$`)
	trainDoneLine  = regexp.MustCompile(`^done: (\d+\.\d\d)%, network ([0-9a-f-]{36})$`)
)

// documentedClient runs the Node client of docs/WEBSOCKET.md, train.mjs,
// exactly as the doc has it (taken from the doc now, not copied into the
// tests), through each shipped balancer: `node train.mjs <balancer URL>`,
// three at once through each. Each must print epochs 1/3, 2/3 and 3/3 and
// its "done" line, and exit 0; the network it names has those three epochs
// in its history. Like every Node socket.io-client left to its defaults, it
// starts on long-polling and sends no cookies: with a balancer that keeps
// clients on a replica by a cookie (the HAProxy recipe did), its second
// poll reaches another replica and it fails with "xhr poll error" or
// "Session ID unknown".
func (s *suite) documentedClient(t *testing.T) {
	node, modules := nodeModules(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.mjs"), docBlock(t, "docs/WEBSOCKET.md", "// train.mjs"), 0o644); err != nil {
		t.Fatal(err)
	}
	// `npm install socket.io-client@4.8`, as the doc says: test/scale's.
	if err := os.Symlink(filepath.Join(modules, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	const runs = 3
	var wg sync.WaitGroup
	for _, lb := range []struct{ name, url string }{{"nginx", s.nginx}, {"HAProxy", s.haproxy}} {
		for i := range runs {
			wg.Go(func() {
				label := fmt.Sprintf("node train.mjs %s (%s, run %d)", lb.url, lb.name, i+1)
				ctx, cancel := context.WithTimeout(t.Context(), 2*eventTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, "train.mjs", lb.url)
				cmd.Dir = dir
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				start := time.Now()
				err := cmd.Run()
				if err != nil {
					t.Errorf("%s: %v after %v\nstdout:\n%s\nstderr:\n%s", label, err, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
					return
				}
				s.checkTrainOutput(t, label, stdout.String())
				t.Logf("%s: ok in %v", label, time.Since(start).Round(time.Millisecond))
			})
		}
	}
	wg.Wait()
}

// checkTrainOutput checks what train.mjs printed, and the network it
// trained.
func (s *suite) checkTrainOutput(t *testing.T, label, out string) {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		// training_progress lines end in \r, to be overwritten.
		if l = l[strings.LastIndex(l, "\r")+1:]; l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 {
		t.Errorf("%s printed %d lines, want 4 (epochs 1/3 to 3/3, done):\n%s", label, len(lines), out)
		return
	}
	var last string
	for i, l := range lines[:3] {
		m := trainEpochLine.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i+1) {
			t.Errorf("%s: line %d is %q, want epoch %d/3", label, i+1, l, i+1)
			return
		}
		last = m[2]
	}
	m := trainDoneLine.FindStringSubmatch(lines[3])
	if m == nil || m[1] != last {
		t.Errorf("%s: last line %q, want done: %s%%, network …", label, lines[3], last)
		return
	}
	// The network it trained, read straight from a replica. (In a
	// goroutine of the test: no t.Fatal, so no must.)
	net := s.c.reps[0].URL + "/api/networks/" + m[2]
	h, err := call(httpClient, "GET", net+"/history", nil)
	if err != nil || h.status != 200 {
		t.Errorf("%s: GET %s/history: %v %v", label, net, h, err)
		return
	}
	eps, _ := h.body["epochs"].([]any)
	if len(eps) != 3 {
		t.Errorf("%s: network %s has %d epochs in its history, want 3", label, m[2], len(eps))
	} else if acc, _ := eps[2].(map[string]any)["accuracy"].(float64); fmt.Sprintf("%.2f", acc*100) != last {
		t.Errorf("%s: printed %s%%, the network's last epoch %v", label, last, acc)
	}
	if d, err := call(httpClient, "DELETE", net, nil); err != nil || d.status != 200 {
		t.Errorf("%s: DELETE %s: %v %v", label, net, d, err)
	}
}
