package deep

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPoolFirstMaximum checks maxPool's 2×2 path, which chooses without
// branches, against the plain rule: the first maximum of each block in
// reading order (a later value only if strictly greater), its value's
// bits (±0 apart) and its offset, on planes full of ties.
func TestMaxPoolFirstMaximum(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	values := []float32{negZero, 0, 0.5, -1, 1, 1}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ h, w, channels, n int }{{2, 2, 1, 1}, {24, 24, 3, 2}, {8, 8, 2, 3}, {4, 6, 1, 1}} {
		in := Shape{Channels: tc.channels, Height: tc.h, Width: tc.w}
		src := make([]float32, tc.channels*tc.n*tc.h*tc.w)
		for i := range src {
			src[i] = values[rng.IntN(len(values))]
		}
		out := len(src) / 4
		dst, arg := make([]float32, out), make([]int32, out)
		maxPool(dst, arg, src, in, 2, tc.n)
		oh, ow := tc.h/2, tc.w/2
		for p := range tc.channels * tc.n {
			for oy := range oh {
				for ox := range ow {
					best := p*tc.h*tc.w + 2*oy*tc.w + 2*ox
					for _, q := range []int{best + 1, best + tc.w, best + tc.w + 1} {
						if src[q] > src[best] {
							best = q
						}
					}
					o := p*oh*ow + oy*ow + ox
					if int(arg[o]) != best || math.Float32bits(dst[o]) != math.Float32bits(src[best]) {
						t.Fatalf("%+v, plane %d, block (%d, %d): got %v at %d, want %v at %d", tc, p, oy, ox, dst[o], arg[o], src[best], best)
					}
				}
			}
		}
	}
}
