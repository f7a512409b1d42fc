//go:build unix

package dirstore

import "syscall"

// openFlags opens a file for reading without blocking: opening a FIFO for
// reading otherwise waits for a writer, forever if none comes. The opened
// descriptor is then checked to be a regular file before anything is read;
// on a regular file O_NONBLOCK changes nothing.
const openFlags = syscall.O_RDONLY | syscall.O_NONBLOCK
