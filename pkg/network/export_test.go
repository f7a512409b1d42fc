package network

import "testing"

// ForEachKernel runs f twice, as subtests: "avx" with the assembly kernels
// (skipped on machines without AVX2 and FMA) and "go" with the Go loops, so
// that a machine with the assembly tests the Go loops too and one without
// still runs f. The switch is package-wide: tests using it must not run in
// parallel.
func ForEachKernel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, mode := range []struct {
		name string
		avx  bool
	}{{"avx", true}, {"go", false}} {
		t.Run(mode.name, func(t *testing.T) {
			if mode.avx && !hasAVX {
				t.Skip("this machine has no AVX2 and FMA: the Go loops run in the other subtest")
			}
			saved := useAVX
			useAVX = mode.avx
			defer func() { useAVX = saved }()
			f(t)
		})
	}
}

// BytesPerRow is the scratch bytes one example of a mini-batch takes, for
// tests to set Params.ScratchBytes to a number of rows.
func BytesPerRow(sizes []int) int { return bytesPerRow(sizes) }
