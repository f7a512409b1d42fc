package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ServerBinary builds ./cmd/server once for the test binary and returns
// its path (in a temporary directory of its own: the tests of a package
// share it).
func ServerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nnserver-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "server")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/server")
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Tool returns the path of a program the test needs, or skips the test
// saying how to install it; under CI (CI set) a missing tool fails the
// test instead: CI must run every suite.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	testutil.SkipOrFail(t, fmt.Sprintf("%s is not installed (%s)", name, install))
	return ""
}

// NpmCI installs a Node test folder's packages from its lock file when
// node_modules lacks pkg (CI installs them beforehand).
func NpmCI(t testing.TB, dir, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err == nil {
		return
	}
	npm := Tool(t, "npm", "Node.js 20+ and npm")
	t.Logf("node_modules of %s lacks %s: running npm ci", dir, pkg)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// Run runs a command in dir with extra environment, streaming its output
// to the test log line by line, and fails the test if it does not succeed
// before ctx ends. On ctx's end it is interrupted first, so that Node's
// after() hooks can stop the servers and browsers they started.
func Run(ctx context.Context, t testing.TB, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
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
			t.Fatalf("%s timed out: %v", name, err)
		}
		t.Fatalf("%s %v failed: %v", name, args, err)
	}
}
