package network

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestKernelsRefuseOutOfBounds makes every kernel reach just past its
// slices. Each slice is the front of a larger array whose tail holds a
// sentinel: the kernel must panic with Go's bounds error, as the Go loops
// do, and the tail must be untouched (the assembly, unchecked, would read or
// write there without a word).
func TestKernelsRefuseOutOfBounds(t *testing.T) {
	ForEachKernel(t, func(t *testing.T) {
		const (
			n        = 8 // a multiple of 4: the assembly takes it
			rows     = 5
			sentinel = 12345.0
		)
		// Slices of length have `extra` more elements of capacity, holding
		// the sentinel.
		const extra = 3 * n
		floats := func(length int) []float64 {
			b := make([]float64, length+extra)
			for i := range b {
				b[i] = float64(i%7) / 7
			}
			for i := length; i < len(b); i++ {
				b[i] = sentinel
			}
			return b[:length]
		}
		bytes := func(vals ...uint8) []uint8 { return append(make([]uint8, 0, len(vals)+extra), vals...) }
		tests := []struct {
			name string
			call func(w, dst []float64)
		}{
			{"gather index past the rows", func(w, dst []float64) {
				gather(dst, w, []uint16{0, 2, rows}, bytes(9, 9, 9), &scale)
			}},
			{"gather index far past", func(w, dst []float64) {
				gather(dst, w, []uint16{65535}, bytes(9), &scale)
			}},
			{"gather fewer intensities than indices", func(w, dst []float64) {
				gather(dst, w, []uint16{0, 1, 2}, bytes(9, 9), &scale)
			}},
			{"scatter index past the rows", func(w, dst []float64) {
				scatter(w, dst, []uint16{1, 3, rows}, bytes(9, 9, 9), &scale, -1)
			}},
			{"scatter index far past", func(w, dst []float64) {
				scatter(w, dst, []uint16{rows + 2}, bytes(9), &scale, -1)
			}},
			{"scatter fewer intensities than indices", func(w, dst []float64) {
				scatter(w, dst, []uint16{0, 1, 2}, bytes(9, 9), &scale, -1)
			}},
			{"axpyRows last row short", func(w, dst []float64) {
				axpyRows(dst, w[:(rows-1)*n+n-1], n, []float64{1, 1, 1, 1, 1})
			}},
			{"axpyRows more rows than there are", func(w, dst []float64) {
				axpyRows(dst, w, n, make([]float64, rows+1))
			}},
			{"axpyRows negative stride", func(w, dst []float64) {
				axpyRows(dst, w[2*n:], -n, []float64{1, 1})
			}},
			{"dot y shorter", func(w, dst []float64) {
				dot(dst, w[:n-1])
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w, dst := floats(rows*n), floats(n)
				wantW, wantDst := slices.Clone(w[:cap(w)]), slices.Clone(dst[:cap(dst)])
				err := catch(func() { tc.call(w, dst) })
				var re runtime.Error
				if !errors.As(err, &re) || !strings.Contains(re.Error(), "out of range") {
					t.Fatalf("got %v, want a bounds error", err)
				}
				if !slices.Equal(w[len(w):cap(w)], wantW[len(w):]) || !slices.Equal(dst[len(dst):cap(dst)], wantDst[len(dst):]) {
					t.Error("the kernel wrote past the end of a slice")
				}
			})
		}
	})
}

// catch runs f and returns what it panicked with as an error, or nil.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = errors.New("panic without an error")
			}
		}
	}()
	f()
	return nil
}
