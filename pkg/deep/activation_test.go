package deep

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// TestActivationsAgree runs sigmoid and tanh through the assembly and
// through the Go functions on every float32 of [−100, 100] with
// DEEP_EXHAUSTIVE=1 (otherwise every 61st, every 997th with -short) and
// the special values: the same bits.
func TestActivationsAgree(t *testing.T) {
	if !hasAVX {
		t.Skip("no AVX2/FMA")
	}
	stride := uint32(61)
	if testing.Short() {
		stride = 997
	}
	if os.Getenv("DEEP_EXHAUSTIVE") != "" {
		stride = 1
	}
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0xffc00001), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-30, -1e-30,
		expBound, -expBound, 2 * expBound, -2 * expBound, expBound / 2, -expBound / 2, tanhSmall, -tanhSmall, 88, -88, 1e4, -1e4}
	for _, f := range []struct {
		name  string
		slice func([]float32)
		one   func(float32) float32
	}{{"sigmoid", sigmoidSlice, sigmoid32}, {"tanh", tanhSlice, tanh32}} {
		const chunk = 1 << 16
		xs := make([]float32, 0, chunk+len(specials))
		ys := make([]float32, 0, cap(xs))
		bad := 0
		check := func() {
			ys = append(ys[:0], xs...)
			f.slice(ys)
			for i, x := range xs {
				if want := f.one(x); math.Float32bits(ys[i]) != math.Float32bits(want) && bad < 10 {
					bad++
					t.Errorf("%s(%g): assembly %g (%#x), Go %g (%#x)", f.name, x, ys[i], math.Float32bits(ys[i]), want, math.Float32bits(want))
				}
			}
			xs = xs[:0]
		}
		xs = append(xs, specials...)
		for _, sign := range []uint32{0, 1 << 31} {
			for b := uint32(0); b <= math.Float32bits(100); b += stride {
				xs = append(xs, math.Float32frombits(b|sign))
				if len(xs) == chunk {
					check()
				}
			}
		}
		check()
	}
}

func TestActivationSpecials(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct{ x, sig, tanh float32 }{
		{0, 0.5, 0},
		{float32(math.Inf(1)), 1, 1},
		{float32(math.Inf(-1)), 0, -1},
		{100, 1, 1},
		{-100, 0, -1},
		{math.MaxFloat32, 1, 1},
		{-math.MaxFloat32, 0, -1},
		{nan, nan, nan},
	} {
		for _, avx := range []bool{false, true} {
			if avx && !hasAVX {
				continue
			}
			s := []float32{c.x, c.x, c.x, c.x, c.x, c.x, c.x, c.x, c.x}
			th := append([]float32(nil), s...)
			func() {
				defer func(u bool) { useAVX = u }(useAVX)
				useAVX = avx
				sigmoidSlice(s)
				tanhSlice(th)
			}()
			for i := range s {
				if !same(s[i], c.sig) || !same(th[i], c.tanh) {
					t.Errorf("avx %v: x %g [%d]: sigmoid %g tanh %g, want %g %g", avx, c.x, i, s[i], th[i], c.sig, c.tanh)
				}
			}
		}
	}
}

func same(a, b float32) bool { return a == b || a != a && b != b }

// TestActivationAccuracy measures sigmoid32 and tanh32 against float64
// math.Exp and math.Tanh on every float32 in [−90, 90] with
// DEEP_EXHAUSTIVE=1 (otherwise every 257th, and every one in ±[86, 90],
// where sigmoid's results turn subnormal and then 0), and fails beyond the
// bounds of docs/DEEP.md: absolute error, and ulps of the float32 result
// where it is a normal number.
func TestActivationAccuracy(t *testing.T) {
	stride := uint32(257)
	if testing.Short() {
		stride = 4099
	}
	if os.Getenv("DEEP_EXHAUSTIVE") != "" {
		stride = 1
	}
	for _, f := range []struct {
		name   string
		one    func(float32) float32
		ref    func(float64) float64
		maxAbs float64
		maxUlp float64
	}{
		{"sigmoid", sigmoid32, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, 2e-7, 3},
		{"tanh", tanh32, math.Tanh, 2e-7, 3},
	} {
		var worstAbs, worstUlp, atAbs, atUlp float64
		type span struct{ from, to, stride uint32 }
		spans := []span{{0, math.Float32bits(90), stride}, {math.Float32bits(86), math.Float32bits(90), 1}}
		for _, sign := range []uint32{0, 1 << 31} {
			for _, sp := range spans {
				for b := sp.from; b <= sp.to; b += sp.stride {
					x := math.Float32frombits(b | sign)
					got, want := float64(f.one(x)), f.ref(float64(x))
					d := math.Abs(got - want)
					if d > worstAbs {
						worstAbs, atAbs = d, float64(x)
					}
					// ulps of the float32 result, where it is normal
					if math.Abs(want) >= 0x1p-126 {
						_, e := math.Frexp(want)
						if u := d / math.Ldexp(1, e-24); u > worstUlp {
							worstUlp, atUlp = u, float64(x)
						}
					}
				}
			}
		}
		t.Logf("%s: max absolute error %.3g (x = %g), max %.3g ulp (x = %g)", f.name, worstAbs, atAbs, worstUlp, atUlp)
		if worstAbs > f.maxAbs || worstUlp > f.maxUlp {
			t.Errorf("%s: error %.3g absolute, %.3g ulp, bounds %g and %g", f.name, worstAbs, worstUlp, f.maxAbs, f.maxUlp)
		}
	}
}

// BenchmarkActivations times sigmoid and tanh of 11,520 values (one conv
// layer of the example network, one image) through the assembly, the Go
// functions, and float64 math as the engine first did.
func BenchmarkActivations(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 11520)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 3)
	}
	z := make([]float32, len(x))
	for _, c := range []struct {
		name string
		f    func([]float32)
	}{
		{"sigmoid/avx", sigmoidSlice},
		{"sigmoid/go", func(z []float32) {
			for i, v := range z {
				z[i] = sigmoid32(v)
			}
		}},
		{"sigmoid/float64", func(z []float32) {
			for i, v := range z {
				z[i] = float32(1 / (1 + math.Exp(-float64(v))))
			}
		}},
		{"tanh/avx", tanhSlice},
		{"tanh/go", func(z []float32) {
			for i, v := range z {
				z[i] = tanh32(v)
			}
		}},
		{"tanh/float64", func(z []float32) {
			for i, v := range z {
				z[i] = float32(math.Tanh(float64(v)))
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if !hasAVX && c.name[len(c.name)-3:] == "avx" {
				b.Skip("no AVX2/FMA")
			}
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				copy(z, x)
				c.f(z)
			}
		})
	}
}
