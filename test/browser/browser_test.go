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
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

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
		testutil.SkipOrFail(t, "Chromium not found at "+chromium+": apt-get install chromium (or set CHROMIUM to its path)")
	}
	node := testenv.Tool(t, "node", "the browser suite needs Node.js 20+ and npm; go test -short skips it")
	dir := filepath.Join(testenv.ModuleRoot(t), "test", "browser")
	testenv.NpmCI(t, dir, "playwright-core")
	bin := testenv.ServerBinary(t)

	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	defer cancel()

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
	testenv.Run(ctx, t, dir, env, node, "--test", "--test-concurrency=1", "--test-reporter=spec", "page.test.mjs")
}
