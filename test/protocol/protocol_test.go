// Package protocol runs the Node protocol suite (*.test.mjs) against the real
// server binary: real HTTP, and the npm socket.io-client the existing apps use.
//
// Run it with `go test ./test/protocol` (needs node and npm on PATH), or by
// hand: go build -o /tmp/server ./cmd/server && cd test/protocol && npm ci &&
// SERVER_BIN=/tmp/server npm test
package protocol

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// testFiles are the suites, in the order they run (one at a time: the
// machine has few cores and every file trains networks).
var testFiles = []string{
	"training.test.mjs",
	"engineio.test.mjs",
	"broadcast.test.mjs",
	"persistence.test.mjs",
	"crash.test.mjs",
	"errors.test.mjs",
	"training-error.test.mjs",
	"transport-edges.test.mjs",
}

const suiteTimeout = 8 * time.Minute

func TestProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("protocol suite: builds the server and runs Node tests; skipped with -short")
	}
	node := lookPath(t, "node")
	npm := lookPath(t, "npm")

	root := testenv.ModuleRoot(t)
	dir := filepath.Join(root, "test", "protocol")

	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "server")
	run(ctx, t, root, nil, "go", "build", "-o", bin, "./cmd/server")

	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		t.Log("node_modules missing: running npm ci")
		run(ctx, t, dir, nil, npm, "ci", "--no-audit", "--no-fund")
	}

	args := append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, testFiles...)
	run(ctx, t, dir, []string{"SERVER_BIN=" + bin}, node, args...)
}

// lookPath finds a tool on PATH or fails the test saying what is missing.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: the protocol suite needs Node.js 20+ and npm (or run go test -short to skip it): %v", name, err)
	}
	return p
}

// run runs a command in dir with extra environment, streaming its output
// to the test log line by line, and fails the test if it does not succeed.
func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// On timeout, stop politely first so node's after() hooks can kill the servers.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second

	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			t.Log(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr) // after an over-long line
	})

	t.Logf("$ %s %v (in %s)", name, args, dir)
	err := cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("%s timed out after %v: %v", name, suiteTimeout, err)
		}
		t.Fatalf("%s %v failed: %v", name, args, err)
	}
}
