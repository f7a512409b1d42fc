// Package sat is saturating arithmetic for counting sizes (parameters,
// multiply-adds, bytes) that a client chooses: a count too large for an
// int is math.MaxInt, which every bound refuses, instead of wrapping round
// to a small or negative number that one would let through.
package sat

import (
	"math"
	"math/bits"
)

// Mul returns a·b, or math.MaxInt if that overflows or either is negative
// (callers count sizes, never negative amounts).
func Mul(a, b int) int {
	if a < 0 || b < 0 {
		return math.MaxInt
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt {
		return math.MaxInt
	}
	return int(lo)
}

// Add returns a+b for non-negative a and b, or math.MaxInt if that
// overflows or either is negative.
func Add(a, b int) int {
	if a < 0 || b < 0 || a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}
