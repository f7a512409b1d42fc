// Package browser runs the management page's end-to-end tests
// (page.test.mjs): the real server binary, driven through a real headless
// Chromium by playwright-core.
//
// Run it with `go test ./test/browser` (needs node 20+, npm and Debian's
// chromium at /usr/bin/chromium, or $CHROMIUM). Skipped with -short; skipped
// when Chromium is missing, except under CI (CI non-empty), where that
// fails. Screenshots go to $ARTIFACTS_DIR/browser, else to a temp folder;
// the test prints which.
package browser

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

const suiteTimeout = 6 * time.Minute

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser suite: builds the server and drives Chromium; skipped with -short")
	}
	testenv.Serial(t)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		msg := "Chromium not found at " + chromium + ": apt-get install chromium (or set CHROMIUM to its path)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI must not skip the browser tests")
		}
		t.Skip(msg)
	}
	node := lookPath(t, "node")
	npm := lookPath(t, "npm")

	root := testenv.ModuleRoot(t)
	dir := filepath.Join(root, "test", "browser")

	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "server")
	run(ctx, t, root, nil, "go", "build", "-o", bin, "./cmd/server")

	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Log("node_modules missing: running npm ci")
		run(ctx, t, dir, nil, npm, "ci", "--no-audit", "--no-fund")
	}

	// Kept after the test: screenshots are artefacts.
	artifacts := os.Getenv("ARTIFACTS_DIR")
	if artifacts != "" {
		artifacts = filepath.Join(artifacts, "browser")
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if artifacts, err = os.MkdirTemp("", "nnserver-browser-artifacts-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots: %s", artifacts)

	env := []string{"SERVER_BIN=" + bin, "CHROMIUM=" + chromium, "ARTIFACTS_DIR=" + artifacts}
	run(ctx, t, dir, env, node, "--test", "--test-concurrency=1", "--test-reporter=spec", "page.test.mjs")
}

// lookPath finds a tool on PATH or fails the test saying what is missing.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: the browser suite needs Node.js 20+ and npm (or run go test -short to skip it): %v", name, err)
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
	// On timeout, stop politely first so that node's after() hooks close
	// Chromium and stop the server.
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
