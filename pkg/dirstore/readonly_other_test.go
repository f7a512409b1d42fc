//go:build !linux

package dirstore

import (
	"os"
	"testing"
)

// makeReadOnly makes dir refuse new entries and removals (mode 0555, which
// binds everyone but root). It reports false if that does not take effect.
func makeReadOnly(t *testing.T, dir string) bool {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	return writeRefused(dir)
}
