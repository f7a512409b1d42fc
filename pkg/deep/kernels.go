//go:build amd64

package deep

import "golang.org/x/sys/cpu"

// hasAVX reports whether this machine can run the assembly kernels; useAVX
// whether they are used (tests switch them off to exercise the Go loops).
var (
	hasAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useAVX = hasAVX
)
