package network

//go:generate go run ./internal/asmgen

import "golang.org/x/sys/cpu"

var useAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func gatherAVX(dst *float64, n int, w *float64, idx *uint16, val *uint8, m int, table *[256]float64)

//go:noescape
func scatterAVX(w *float64, n int, idx *uint16, val *uint8, m int, table *[256]float64, coef float64, src *float64)

func gather(dst, w []float64, idx []uint16, val []uint8, table *[256]float64) {
	if !useAVX || len(dst)%4 != 0 || len(dst) == 0 || len(idx) == 0 {
		gatherGeneric(dst, w, idx, val, table)
		return
	}
	val = val[:len(idx)]
	gatherAVX(&dst[0], len(dst), &w[0], &idx[0], &val[0], len(idx), table)
}

func scatter(w []float64, src []float64, idx []uint16, val []uint8, table *[256]float64, coef float64) {
	if !useAVX || len(src)%4 != 0 || len(src) == 0 || len(idx) == 0 {
		scatterGeneric(w, src, idx, val, table, coef)
		return
	}
	val = val[:len(idx)]
	scatterAVX(&w[0], len(src), &idx[0], &val[0], len(idx), table, coef, &src[0])
}
