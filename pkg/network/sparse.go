package network

// The two loops that dominate training, over an example's non-zero inputs:
//
//	gather:  dst += Σ_j table[val[j]] · w[idx[j]·n : idx[j]·n+n]
//	scatter: w[idx[j]·n : idx[j]·n+n] += coef · table[val[j]] · src   for every j
//
// On amd64 with AVX2 and FMA they run as assembly (sparse_amd64.s), one call
// per example; elsewhere as the Go loops below. Callers guarantee that every
// idx[j]·n+n ≤ len(w) (see checkInputs).

func gatherGeneric(dst, w []float64, idx []uint16, val []uint8, table *[256]float64) {
	n := len(dst)
	for j, p := range idx {
		a := table[val[j]]
		row := w[int(p)*n : int(p)*n+n]
		for i, v := range row {
			dst[i] += a * v
		}
	}
}

func scatterGeneric(w []float64, src []float64, idx []uint16, val []uint8, table *[256]float64, coef float64) {
	n := len(src)
	for j, p := range idx {
		a := coef * table[val[j]]
		row := w[int(p)*n : int(p)*n+n]
		for i, v := range src {
			row[i] += a * v
		}
	}
}
