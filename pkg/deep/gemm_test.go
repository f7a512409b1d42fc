package deep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestGemmKernels compares the three products, with the assembly kernels
// and with the Go loops, against float64 sums, over shapes that exercise
// every kernel's tile and tail (rows 1–13, columns 1–40, k 1–70) and row
// strides longer than the rows. Tolerance: 1e-5 relative to the sum of the
// terms' magnitudes (float32 rounding of sums of at most 70 terms).
func TestGemmKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type gemm func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int)
	kinds := []struct {
		name string
		f    gemm
		// element (i,p) of A and (p,j) of B, in the stored matrices
		aIdx func(i, p, lda int) int
		bIdx func(p, j, ldb int) int
		aDim func(m, k int) (rows, cols int)
		bDim func(k, n int) (rows, cols int)
	}{
		{"NN", gemmNN, func(i, p, lda int) int { return i*lda + p }, func(p, j, ldb int) int { return p*ldb + j },
			func(m, k int) (int, int) { return m, k }, func(k, n int) (int, int) { return k, n }},
		{"TN", gemmTN, func(i, p, lda int) int { return p*lda + i }, func(p, j, ldb int) int { return p*ldb + j },
			func(m, k int) (int, int) { return k, m }, func(k, n int) (int, int) { return k, n }},
		{"NT", gemmNT, func(i, p, lda int) int { return i*lda + p }, func(p, j, ldb int) int { return j*ldb + p },
			func(m, k int) (int, int) { return m, k }, func(k, n int) (int, int) { return n, k }},
	}
	defer func(u bool) { useAVX = u }(useAVX)
	for _, avx := range []bool{false, true} {
		if avx && !hasAVX {
			continue
		}
		useAVX = avx
		for _, kd := range kinds {
			for _, m := range []int{1, 4, 5, 6, 7, 13} {
				for _, n := range []int{1, 3, 16, 17, 40} {
					for _, k := range []int{1, 8, 9, 70} {
						name := fmt.Sprintf("avx=%v/%s/%dx%dx%d", avx, kd.name, m, n, k)
						ar, ac := kd.aDim(m, k)
						br, bc := kd.bDim(k, n)
						lda, ldb, ldc := ac+3, bc+1, n+2
						a := randSlice32(rng, ar*lda)
						b := randSlice32(rng, br*ldb)
						c := randSlice32(rng, m*ldc)
						want := make([]float64, len(c))
						bound := make([]float64, len(c))
						for i := range m {
							for j := range n {
								s, mag := float64(c[i*ldc+j]), math.Abs(float64(c[i*ldc+j]))
								for p := range k {
									x := float64(a[kd.aIdx(i, p, lda)]) * float64(b[kd.bIdx(p, j, ldb)])
									s += x
									mag += math.Abs(x)
								}
								want[i*ldc+j], bound[i*ldc+j] = s, mag
							}
						}
						orig := append([]float32(nil), c...)
						kd.f(m, n, k, a, lda, b, ldb, c, ldc)
						for i := range c {
							if i%ldc >= n {
								if c[i] != orig[i] {
									t.Fatalf("%s: wrote outside C's rows at %d", name, i)
								}
								continue
							}
							if d := math.Abs(float64(c[i]) - want[i]); d > 1e-5*bound[i] {
								t.Fatalf("%s: C[%d] = %v, want %v", name, i, c[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestMoveRows: copyRows and addRows, with the assembly and the Go loops,
// for widths around multiples of 8 and strides longer than the rows; exact.
func TestMoveRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	defer func(u bool) { useAVX = u }(useAVX)
	for _, avx := range []bool{false, true} {
		if avx && !hasAVX {
			continue
		}
		useAVX = avx
		for _, width := range []int{1, 7, 8, 9, 16, 24, 25} {
			for _, rows := range []int{1, 3, 8} {
				ldd, lds := width+5, width+2
				src := randSlice32(rng, rows*lds)
				dst := randSlice32(rng, rows*ldd)
				orig := append([]float32(nil), dst...)
				addRows(dst, ldd, src, lds, rows, width)
				for i := range dst {
					r, j := i/ldd, i%ldd
					want := orig[i]
					if j < width {
						want += src[r*lds+j]
					}
					if dst[i] != want {
						t.Fatalf("avx %v, add, %d rows of %d: dst[%d] = %v, want %v", avx, rows, width, i, dst[i], want)
					}
				}
				copyRows(dst, ldd, src, lds, rows, width)
				for i := range dst {
					r, j := i/ldd, i%ldd
					want := orig[i]
					if j < width {
						want = src[r*lds+j]
					} else if dst[i] != want {
						t.Fatalf("avx %v, copy, %d rows of %d: wrote past a row at %d", avx, rows, width, i)
					}
					if j < width && dst[i] != want {
						t.Fatalf("avx %v, copy, %d rows of %d: dst[%d] = %v, want %v", avx, rows, width, i, dst[i], want)
					}
				}
			}
		}
	}
}
