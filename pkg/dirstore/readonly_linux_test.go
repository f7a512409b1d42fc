package dirstore

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h, the attribute chattr +i
// sets.
const fsImmutable = 0x10

// makeReadOnly makes dir refuse new entries and removals, for root too:
// the immutable attribute (chattr +i), which root's privileges do not
// bypass; where the file system has no such attribute, mode 0555, which
// binds everyone but root. It reports false if neither takes effect.
func makeReadOnly(t *testing.T, dir string) bool {
	t.Helper()
	if f, err := os.Open(dir); err == nil {
		flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		if err == nil {
			if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsImmutable)); err == nil {
				t.Cleanup(func() {
					unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
					f.Close()
				})
				return writeRefused(dir)
			}
		}
		f.Close()
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	return writeRefused(dir)
}
