package render

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden PNGs in testdata/")

// ramp is a synthetic digit whose every pixel differs from its neighbours,
// with pure 0 and 255 in it.
func ramp() []byte {
	p := make([]byte, pixLen)
	for i := range p {
		p[i] = byte(i * 37)
	}
	p[0], p[pixLen-1] = 0, 255
	return p
}

// mnistDigit is MNIST test image #0 (a 7), 784 raw bytes. MNIST: Yann LeCun,
// Corinna Cortes, Christopher Burges, CC BY-SA 3.0.
func mnistDigit(t testing.TB) []byte {
	t.Helper()
	p, err := os.ReadFile(filepath.Join("testdata", "mnist-test-0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != pixLen {
		t.Fatalf("testdata digit has %d bytes", len(p))
	}
	return p
}

func decode(t *testing.T, b []byte) *image.RGBA {
	t.Helper()
	m, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if m.Bounds() != image.Rect(0, 0, Size, Size) {
		t.Fatalf("bounds %v, want 300×300", m.Bounds())
	}
	// Colour type 6 decodes as *image.NRGBA; the image is opaque, so its bytes
	// are the same as premultiplied RGBA.
	n, ok := m.(*image.NRGBA)
	if !ok {
		t.Fatalf("decoded as %T, want *image.NRGBA (an RGBA PNG)", m)
	}
	for i := 3; i < len(n.Pix); i += 4 {
		if n.Pix[i] != 255 {
			t.Fatalf("pixel %d has alpha %d, want opaque", i/4, n.Pix[i])
		}
	}
	return &image.RGBA{Pix: n.Pix, Stride: n.Stride, Rect: n.Rect}
}

func render(t *testing.T, pixels []byte, p, a int) *image.RGBA {
	t.Helper()
	b, err := DigitPNG(pixels, p, a)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

func rgbaAt(m *image.RGBA, x, y int) [4]byte {
	i := m.PixOffset(x, y)
	return [4]byte(m.Pix[i : i+4])
}

func TestHeader(t *testing.T) {
	b, err := DigitPNG(ramp(), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")) {
		t.Fatalf("does not start with a PNG signature and IHDR: %q", b[:16])
	}
	w, h := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
	depth, colourType := b[24], b[25]
	if w != 300 || h != 300 || depth != 8 || colourType != 6 {
		t.Errorf("IHDR: %d×%d, depth %d, colour type %d; want 300×300, 8-bit RGBA (6)", w, h, depth, colourType)
	}
	decode(t, b)
}

func TestDigitPixels(t *testing.T) {
	in := ramp()
	orig := bytes.Clone(in)
	m := render(t, in, 3, 5)
	if !bytes.Equal(in, orig) {
		t.Fatal("DigitPNG modified its input")
	}
	// Spot checks: the digit is 252×252 at (24, 40), 9× per source pixel.
	if got := rgbaAt(m, 24, 40); got != [4]byte{0, 0, 0, 255} {
		t.Errorf("source pixel (0,0) = 0 drawn as %v, want black", got)
	}
	if got := rgbaAt(m, 24+252-1, 40+252-1); got != [4]byte{255, 255, 255, 255} {
		t.Errorf("source pixel (27,27) = 255 drawn as %v, want white", got)
	}
	// Every output pixel of the digit area: block (sx, sy) has the grey of
	// the source pixel, exactly.
	for y := 0; y < digitW; y++ {
		for x := 0; x < digitW; x++ {
			v := in[(y/9)*DigitSide+x/9]
			if got := rgbaAt(m, digitX+x, digitY+y); got != [4]byte{v, v, v, 255} {
				t.Fatalf("digit pixel (%d,%d) = %v, want grey %d of source (%d,%d)", x, y, got, v, x/9, y/9)
			}
		}
	}
	// The digit area is exactly where it should be: white just outside it.
	for _, pt := range []image.Point{{23, 40}, {276, 40}, {24, 39}, {24, 292}, {275, 292}, {276, 291}} {
		if got := rgbaAt(m, pt.X, pt.Y); got != [4]byte{255, 255, 255, 255} {
			t.Errorf("pixel %v just outside the digit = %v, want white", pt, got)
		}
	}
}

func TestDigitCentred(t *testing.T) {
	if digitX != Size-digitX-digitW {
		t.Errorf("digit not centred horizontally: left %d, right %d", digitX, Size-digitX-digitW)
	}
	if textX != Size-textX-textW {
		t.Errorf("caption box not centred horizontally: left %d, right %d", textX, Size-textX-textW)
	}
	if textY+textH >= digitY {
		t.Errorf("caption (y %d–%d) overlaps the digit (y from %d)", textY, textY+textH, digitY)
	}
}

// dark reports whether a pixel is text-dark.
func dark(c [4]byte) bool { return c[0] < 0x80 }

func TestCaption(t *testing.T) {
	in := mnistDigit(t)
	a := render(t, in, 3, 7)
	b := render(t, in, 5, 7)

	// Text is drawn: dark pixels in the caption band, inked glyphs centred.
	minX, maxX, minY, maxY, n := Size, -1, Size, -1, 0
	for y := 0; y < digitY; y++ {
		for x := 0; x < Size; x++ {
			if dark(rgbaAt(a, x, y)) {
				n++
				minX, maxX = min(minX, x), max(maxX, x)
				minY, maxY = min(minY, y), max(maxY, y)
			}
		}
	}
	if n < 200 {
		t.Fatalf("caption has %d dark pixels; text not drawn?", n)
	}
	if left, right := minX, Size-1-maxX; left-right > 6 || right-left > 6 {
		t.Errorf("caption ink spans x %d–%d: not centred (margins %d / %d)", minX, maxX, left, right)
	}
	if minY < textY || maxY >= textY+textH {
		t.Errorf("caption ink spans y %d–%d, outside the band %d–%d", minY, maxY, textY, textY+textH)
	}
	if c := rgbaAt(a, 0, 0); c != [4]byte{255, 255, 255, 255} {
		t.Errorf("background = %v, want white", c)
	}

	// Predicted 3 vs 5: only the caption differs, and it does.
	diff := 0
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			if rgbaAt(a, x, y) != rgbaAt(b, x, y) {
				if y >= digitY {
					t.Fatalf("pixel (%d,%d) below the caption differs between captions", x, y)
				}
				diff++
			}
		}
	}
	if diff == 0 {
		t.Error(`"Predicted: 3" and "Predicted: 5" render the same`)
	}
	// And "Actual" shows in the caption too.
	if c := render(t, in, 3, 1); bytes.Equal(c.Pix, a.Pix) {
		t.Error(`"Actual: 7" and "Actual: 1" render the same`)
	}
}

func TestBadInput(t *testing.T) {
	ok := ramp()
	for _, tc := range []struct {
		name   string
		pixels []byte
		p, a   int
	}{
		{"nil", nil, 1, 1},
		{"783 bytes", ok[:783], 1, 1},
		{"785 bytes", append(bytes.Clone(ok), 0), 1, 1},
		{"56×56", make([]byte, 56*56), 1, 1},
		{"predicted -1", ok, -1, 1},
		{"predicted 10", ok, 10, 1},
		{"actual -1", ok, 1, -1},
		{"actual 10", ok, 1, 10},
	} {
		b, err := DigitPNG(tc.pixels, tc.p, tc.a)
		if err == nil || b != nil {
			t.Errorf("%s: got %d bytes, err %v; want an error", tc.name, len(b), err)
		}
	}
	for p := 0; p <= 9; p++ {
		if _, err := DigitPNG(ok, p, 9-p); err != nil {
			t.Errorf("digits %d, %d: %v", p, 9-p, err)
		}
	}
}

// TestGolden compares the decoded pixels (not the bytes: compressed output may
// change with the Go version) with testdata/golden-*.png. Look at those files
// after changing the drawing; rewrite them with go test -run Golden -update.
func TestGolden(t *testing.T) {
	in := mnistDigit(t)
	for _, tc := range []struct{ p, a int }{{7, 7}, {1, 7}} {
		b, err := DigitPNG(in, tc.p, tc.a)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join("testdata", fmt.Sprintf("golden-p%d-a%d.png", tc.p, tc.a))
		if *update {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go test -run Golden -update to create it)", err)
		}
		if got, w := decode(t, b), decode(t, want); !bytes.Equal(got.Pix, w.Pix) {
			t.Errorf("%s: pixels differ from the golden image (inspect, then -update)", name)
		}
	}
}

// TestConcurrent renders from many goroutines (run with -race): pooled buffers
// and cached captions must not mix.
func TestConcurrent(t *testing.T) {
	in := mnistDigit(t)
	want := make([][]byte, 10)
	for i := range want {
		var err error
		if want[i], err = DigitPNG(in, i, 9-i); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for k := 0; k < 20; k++ {
				i := (g + k) % 10
				b, err := DigitPNG(in, i, 9-i)
				if err != nil || !bytes.Equal(b, want[i]) {
					errs <- fmt.Sprintf("goroutine %d: image %d differs (err %v)", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkDigitPNG(b *testing.B) {
	in := mnistDigit(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := DigitPNG(in, i%10, (i/10)%10); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
