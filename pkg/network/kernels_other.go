//go:build !amd64

package network

// There are no assembly kernels for this architecture.
var (
	hasAVX = false
	useAVX = false
)

func gather(dst, w []float64, idx []uint16, val []uint8, table *[256]float64) {
	gatherGeneric(dst, w, idx, val, table)
}

func scatter(w []float64, src []float64, idx []uint16, val []uint8, table *[256]float64, coef float64) {
	scatterGeneric(w, src, idx, val, table, coef)
}

func axpyRows(dst, rows []float64, stride int, coef []float64) {
	axpyRowsGeneric(dst, rows, stride, coef)
}

func dot(x, y []float64) float64 { return dotGeneric(x, y) }
