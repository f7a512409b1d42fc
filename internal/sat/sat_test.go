package sat

import (
	"math"
	"testing"
)

func TestSaturating(t *testing.T) {
	const m = math.MaxInt
	for _, tc := range []struct {
		a, b     int
		mul, add int
	}{
		{0, 0, 0, 0},
		{3, 4, 12, 7},
		{1 << 31, 1 << 31, 1 << 62, 1 << 32},
		{1 << 32, 1 << 32, m, 1 << 33},                 // the product overflows
		{m, 1, m, m},                                   // the sum does
		{m - 1, 1, m - 1, m},                           // exactly fits
		{math.MaxInt / 2, 2, m - 1, math.MaxInt/2 + 2}, // (MaxInt/2)·2 = MaxInt−1
		{-1, 5, m, m},                                  // negative: a size is never
		{5, -1, m, m},                                  //
		{math.MinInt, math.MinInt, m, m},               // would wrap to 0
		{1 << 62, 4, m, 1<<62 + 4},                     // 2^64 wraps to 0 without saturation
		{3037000500, 3037000500, m, 6074001000},        // just past √MaxInt
	} {
		if got := Mul(tc.a, tc.b); got != tc.mul {
			t.Errorf("Mul(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.mul)
		}
		if got := Add(tc.a, tc.b); got != tc.add {
			t.Errorf("Add(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.add)
		}
	}
}
