//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import (
	"context"
	"log/slog"
)

// lockFile does nothing where flock is not available: SQLite's own locks
// still keep the file consistent, only the guard against a second process
// is lost.
func lockFile(context.Context, string, *slog.Logger) (func(), error) { return func() {}, nil }
