//go:build !unix

package testenv

import "testing"

// Serial is a no-op where file locks are not available.
func Serial(testing.TB) {}
