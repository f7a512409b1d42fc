// Package testenv holds what the end-to-end test packages (protocol, load,
// container) share: finding the module and a free port.
package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// ModuleRoot returns the directory holding go.mod, walking up from the
// working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int { return testutil.FreePort(t) }
