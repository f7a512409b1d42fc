package network

import "golang.org/x/sys/cpu"

// hasAVX reports whether this machine can run the assembly kernels; useAVX
// whether they are used (tests switch them off to exercise the Go loops).
var (
	hasAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useAVX = hasAVX
)

//go:noescape
func gatherAVX(dst *float64, n int, w *float64, idx *uint16, val *uint8, m int, table *[256]float64)

//go:noescape
func scatterAVX(w *float64, n int, idx *uint16, val *uint8, m int, table *[256]float64, coef float64, src *float64)

// The assembly checks no bounds: each wrapper below checks, once per call,
// everything the assembly will touch, so that a bad call panics with Go's
// bounds error, as the Go loops would, instead of reading or writing past a
// slice.

func gather(dst, w []float64, idx []uint16, val []uint8, table *[256]float64) {
	if !useAVX || len(dst)%4 != 0 || len(dst) == 0 || len(idx) == 0 {
		gatherGeneric(dst, w, idx, val, table)
		return
	}
	checkSparse(len(dst), w, idx, val)
	gatherAVX(&dst[0], len(dst), &w[0], &idx[0], &val[0], len(idx), table)
}

func scatter(w []float64, src []float64, idx []uint16, val []uint8, table *[256]float64, coef float64) {
	if !useAVX || len(src)%4 != 0 || len(src) == 0 || len(idx) == 0 {
		scatterGeneric(w, src, idx, val, table, coef)
		return
	}
	checkSparse(len(src), w, idx, val)
	scatterAVX(&w[0], len(src), &idx[0], &val[0], len(idx), table, coef, &src[0])
}

// checkSparse panics unless val has an intensity for every index and w holds
// row idx[j] (n wide) for every j. Indices are ascending (see Examples), so
// the last is the largest: one check covers them all.
func checkSparse(n int, w []float64, idx []uint16, val []uint8) {
	_ = val[len(idx)-1]
	_ = w[int(idx[len(idx)-1])*n+n-1]
}

//go:noescape
func axpyRowsAVX(dst *float64, n int, rows *float64, stride int, coef *float64, m int)

//go:noescape
func dotAVX(x, y *float64, n int) float64

// axpyRows adds coef[j]·rows[j·stride:][:len(dst)] to dst for every j.
func axpyRows(dst, rows []float64, stride int, coef []float64) {
	n4 := len(dst) &^ 3
	if !useAVX || n4 == 0 || len(coef) == 0 {
		axpyRowsGeneric(dst, rows, stride, coef)
		return
	}
	if len(coef) > 1 {
		// The second row starts inside rows: stride is neither negative
		// nor so large that the product below could overflow.
		_ = rows[stride]
	}
	_ = rows[(len(coef)-1)*stride+len(dst)-1] // the end of the last row
	axpyRowsAVX(&dst[0], n4, &rows[0], stride, &coef[0], len(coef))
	if n4 < len(dst) {
		axpyRowsGeneric(dst[n4:], rows[n4:], stride, coef)
	}
}

// dot returns Σ x[i]·y[i]; y must be at least as long as x.
func dot(x, y []float64) float64 {
	n4 := len(x) &^ 3
	if !useAVX || n4 == 0 {
		return dotGeneric(x, y)
	}
	_ = y[len(x)-1]
	return dotAVX(&x[0], &y[0], n4) + dotGeneric(x[n4:], y[n4:len(x)])
}
