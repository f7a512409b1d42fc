//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often lockFile tries again a lock another process holds.
const lockPoll = 100 * time.Millisecond

// lockFile takes an exclusive flock on the file at path (created if need
// be), waiting for another process to release it until ctx ends. The
// kernel releases it when unlock closes the file, or when the process
// dies. A file system that cannot lock (some network or FUSE mounts) is
// logged and the lock skipped: SQLite's own locks still keep the file
// consistent, only the guard against two processes is lost.
func lockFile(ctx context.Context, path string, log *slog.Logger) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			if waited {
				log.Info("job database: the other process released it", "lock", path)
			}
			return func() { f.Close() }, nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			log.Warn("job database: the file system cannot lock files; going on without the guard against a second process", "lock", path, "err", err)
			return func() { f.Close() }, nil
		case !waited:
			log.Warn("job database: another process holds it; waiting for it to stop", "lock", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another process holds %s: %w", path, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
}
