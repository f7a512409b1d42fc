package digit_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// picture returns a w×h NRGBA image of colour bg with the rectangles r
// filled with colour ink.
func picture(w, h int, bg, ink color.Color, rs ...image.Rectangle) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Rect, image.NewUniform(bg), image.Point{}, draw.Src)
	for _, r := range rs {
		draw.Draw(img, r, image.NewUniform(ink), image.Point{}, draw.Src)
	}
	return img
}

var (
	white       = color.Gray{255}
	black       = color.Gray{0}
	transparent = color.NRGBA{}
	// A bar 10 wide and 60 tall, off-centre in a 100×100 image, and
	// elsewhere; and an L of two bars, with a centre of mass off its box's
	// centre.
	bar      = image.Rect(20, 10, 30, 70)
	barMoved = image.Rect(85, 35, 95, 95)
	ell      = []image.Rectangle{image.Rect(20, 20, 30, 80), image.Rect(20, 70, 60, 80)}
	ellMoved = []image.Rectangle{image.Rect(50, 5, 60, 65), image.Rect(50, 55, 90, 65)}
)

// pngHeader returns a PNG's signature and IHDR chunk, for an 8-bit grey
// image of w×h pixels, and nothing else.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, 13)
	start := len(b)
	b = append(b, "IHDR"...)
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, 8, 0, 0, 0, 0) // depth 8, greyscale, deflate, adaptive filter, no interlace
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// gifHeader returns a GIF's header and logical screen descriptor, for w×h.
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0) // no global colour table
}

// jpegHeader returns a JPEG's start of image, a baseline start of frame for
// w×h, three components, and the start of a start of scan.
func jpegHeader(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xc0, 0, 17, 8}
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	return append(b, 0xff, 0xda, 0, 12) // start of scan: without JFIF, DecodeConfig reads to here

}

func encodeGIF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, &gif.Options{NumColors: 256, Quantizer: nil}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// toGray, toGray16 and toPaletted convert an image for the greyscale JPEG,
// the 16-bit PNG and the palette PNG.
func toGray(img image.Image) image.Image {
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Rect, img, img.Bounds().Min, draw.Src)
	return g
}

func toGray16(img image.Image) image.Image {
	g := image.NewGray16(img.Bounds())
	draw.Draw(g, g.Rect, img, img.Bounds().Min, draw.Src)
	return g
}

func toPaletted(img image.Image) image.Image {
	p := image.NewPaletted(img.Bounds(), append(color.Palette{transparent}, palette.WebSafe...))
	draw.Draw(p, p.Rect, img, img.Bounds().Min, draw.Src)
	return p
}

// checkInput checks the promises FromImage keeps for every image it accepts:
// 784 values in [0, 1], the strongest 1, the centre of mass at pixel
// (14, 14) to the nearest pixel (if nothing was clipped), the digit no more
// than 20 pixels wide or tall.
func checkInput(t *testing.T, x []float64) {
	t.Helper()
	if len(x) != digit.Pixels {
		t.Fatalf("%d values, want %d", len(x), digit.Pixels)
	}
	var top, sum, sx, sy float64
	x0, y0, x1, y1 := digit.Side, digit.Side, -1, -1
	for i, v := range x {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("x[%d] = %v, not in [0, 1]", i, v)
		}
		px, py := i%digit.Side, i/digit.Side
		top, sum, sx, sy = max(top, v), sum+v, sx+v*float64(px), sy+v*float64(py)
		if v > 0 {
			x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px), max(y1, py)
		}
	}
	if top != 1 {
		t.Errorf("strongest pixel is %v, want 1", top)
	}
	if cx, cy := sx/sum, sy/sum; math.Abs(cx-14) > 0.5+1e-9 || math.Abs(cy-14) > 0.5+1e-9 {
		t.Errorf("centre of mass at (%.2f, %.2f), want (14, 14) ± 0.5", cx, cy)
	}
	if w, h := x1-x0+1, y1-y0+1; max(w, h) != 20 {
		t.Errorf("digit is %d×%d pixels, want the longer side 20", w, h)
	}
}

// meanAbsDiff is the mean absolute difference of two inputs.
func meanAbsDiff(a, b []float64) float64 {
	var d float64
	for i := range a {
		d += math.Abs(a[i] - b[i])
	}
	return d / float64(len(a))
}

// TestFromImage feeds synthetic images of a few shapes drawn every which
// way, and compares each input with that of the plain PNG of the shape,
// black on white.
func TestFromImage(t *testing.T) {
	grey := func(v uint8) color.Color { return color.Gray{v} }
	for _, shape := range []struct {
		name         string
		rects        []image.Rectangle
		moved        []image.Rectangle // the same shape elsewhere
		wantW, wantH int               // its size in the input
	}{
		{"bar", []image.Rectangle{bar}, []image.Rectangle{barMoved}, 3, 20},
		{"L", ell, ellMoved, 13, 20},
	} {
		ref, err := digit.FromImage(t.Context(), encodePNG(t, picture(100, 100, white, black, shape.rects...)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			data    []byte
			maxDiff float64 // mean absolute difference from ref
		}{
			{"black on white", encodePNG(t, picture(100, 100, white, black, shape.rects...)), 0},
			{"white on black", encodePNG(t, picture(100, 100, black, white, shape.rects...)), 0},
			{"off-centre", encodePNG(t, picture(100, 100, white, black, shape.moved...)), 0},
			{"wide canvas", encodePNG(t, picture(300, 100, white, black, shape.moved...)), 0},
			{"grey background", encodePNG(t, picture(100, 100, grey(190), grey(60), shape.rects...)), 0.01},
			{"dark grey background, light ink", encodePNG(t, picture(100, 100, grey(40), grey(200), shape.rects...)), 0.01},
			{"coloured", encodePNG(t, picture(100, 100, color.NRGBA{255, 250, 220, 255}, color.NRGBA{20, 40, 160, 255}, shape.rects...)), 0.01},
			{"black ink on transparent", encodePNG(t, picture(100, 100, transparent, black, shape.rects...)), 0},
			{"white ink on transparent", encodePNG(t, picture(100, 100, transparent, white, shape.rects...)), 0},
			{"half-transparent ink", encodePNG(t, picture(100, 100, transparent, color.NRGBA{0, 0, 0, 128}, shape.rects...)), 0.01},
			{"16-bit grey PNG", encodePNG(t, toGray16(picture(100, 100, white, black, shape.rects...))), 0},
			{"palette PNG", encodePNG(t, toPaletted(picture(100, 100, transparent, black, shape.rects...))), 0},
			{"JPEG", encodeJPEG(t, picture(100, 100, white, black, shape.rects...), 75), 0.03},
			{"JPEG, quality 20", encodeJPEG(t, picture(100, 100, white, black, shape.rects...), 20), 0.05},
			{"greyscale JPEG", encodeJPEG(t, toGray(picture(100, 100, white, black, shape.rects...)), 75), 0.03},
			{"GIF", encodeGIF(t, picture(100, 100, white, black, shape.rects...)), 0},
			{"10 times larger", encodePNG(t, picture(1000, 1000, white, black, scaled(shape.rects, 10)...)), 0.02},
		} {
			t.Run(shape.name+"/"+tc.name, func(t *testing.T) {
				x, err := digit.FromImage(t.Context(), tc.data)
				if err != nil {
					t.Fatal(err)
				}
				checkInput(t, x)
				if d := meanAbsDiff(x, ref); d > tc.maxDiff {
					t.Errorf("mean absolute difference from black on white %.4f, want <= %.4f", d, tc.maxDiff)
				}
			})
		}
		// The shape itself: its box scaled to 20 pixels.
		x0, y0, x1, y1 := digit.Side, digit.Side, -1, -1
		for i, v := range ref {
			if v > 0.5 {
				x0, y0, x1, y1 = min(x0, i%digit.Side), min(y0, i/digit.Side), max(x1, i%digit.Side), max(y1, i/digit.Side)
			}
		}
		if w, h := x1-x0+1, y1-y0+1; w != shape.wantW || h != shape.wantH {
			t.Errorf("%s is %d×%d pixels in the input, want %d×%d", shape.name, w, h, shape.wantW, shape.wantH)
		}
	}
}

func scaled(rs []image.Rectangle, k int) []image.Rectangle {
	out := make([]image.Rectangle, len(rs))
	for i, r := range rs {
		out[i] = image.Rectangle{r.Min.Mul(k), r.Max.Mul(k)}
	}
	return out
}

func TestFromImageRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 1000)
	for i := range noise {
		noise[i] = byte(rng.UintN(256))
	}
	okPNG := encodePNG(t, picture(100, 100, white, black, bar))
	okJPEG := encodeJPEG(t, picture(100, 100, white, black, bar), 75)
	okGIF := encodeGIF(t, picture(100, 100, white, black, bar))
	badCRC := bytes.Clone(okPNG)
	badCRC[8+8+13] ^= 1 // IHDR's checksum
	for _, tc := range []struct {
		name string
		data []byte
		kind error
		msg  string
	}{
		{"nothing", nil, digit.ErrEmpty, "image is empty"},
		{"empty", []byte{}, digit.ErrEmpty, "image is empty"},
		{"random bytes", noise, digit.ErrFormat, "not a PNG, JPEG or GIF image"},
		{"text", []byte("hello"), digit.ErrFormat, "not a PNG, JPEG or GIF image"},
		{"base64 of a PNG", []byte("iVBORw0KGgoAAAANSUhEUg"), digit.ErrFormat, "not a PNG, JPEG or GIF image"},
		{"PNG signature only", okPNG[:8], digit.ErrCorrupt, "truncated PNG: unexpected EOF"},
		{"PNG header only", pngHeader(100, 100), digit.ErrCorrupt, "truncated PNG: unexpected EOF"},
		{"PNG cut in its pixels", okPNG[:len(okPNG)/2], digit.ErrCorrupt, "truncated PNG: not enough pixel data"},
		{"PNG cut before its end", okPNG[:len(okPNG)-20], digit.ErrCorrupt, "truncated PNG: unexpected EOF"},
		{"PNG with a bad checksum", badCRC, digit.ErrCorrupt, "invalid PNG: invalid checksum"},
		{"truncated JPEG", okJPEG[:len(okJPEG)/2], digit.ErrCorrupt, "truncated JPEG: unexpected EOF"},
		{"JPEG start only", okJPEG[:2], digit.ErrCorrupt, "truncated JPEG: unexpected EOF"},
		{"JPEG header only", jpegHeader(100, 100), digit.ErrCorrupt, "JPEG"},
		{"truncated GIF", okGIF[:len(okGIF)/2], digit.ErrCorrupt, "truncated GIF: unexpected EOF"},
		{"PNG of 20000×20000", pngHeader(20000, 20000), digit.ErrTooLarge, "image is 20000×20000 pixels, more than 4096×4096"},
		{"PNG of 4097×1", pngHeader(4097, 1), digit.ErrTooLarge, "image is 4097×1 pixels, more than 4096×4096"},
		{"PNG of 1×4097", pngHeader(1, 4097), digit.ErrTooLarge, "image is 1×4097 pixels, more than 4096×4096"},
		{"PNG of 4096×4096 (allowed, but cut)", pngHeader(4096, 4096), digit.ErrCorrupt, "truncated PNG"},
		{"PNG of 0×10", pngHeader(0, 10), digit.ErrCorrupt, "invalid PNG"},
		{"GIF of 20000×20000", gifHeader(20000, 20000), digit.ErrTooLarge, "image is 20000×20000 pixels, more than 4096×4096"},
		{"GIF of 0×0", gifHeader(0, 0), digit.ErrEmpty, "image has no pixels (0×0)"},
		{"JPEG of 20000×20000", jpegHeader(20000, 20000), digit.ErrTooLarge, "image is 20000×20000 pixels, more than 4096×4096"},
		{"over 1 MiB", append(bytes.Clone(okPNG), make([]byte, digit.MaxImageBytes)...), digit.ErrTooLarge,
			"image is 10488" /* the length depends on the PNG encoder */},
		{"1×1 white", encodePNG(t, picture(1, 1, white, black)), digit.ErrBlank, "image is blank: no ink found"},
		{"1×1 black", encodePNG(t, picture(1, 1, black, white)), digit.ErrBlank, "image is blank: no ink found"},
		{"all white", encodePNG(t, picture(100, 100, white, black)), digit.ErrBlank, "image is blank: no ink found"},
		{"all black", encodePNG(t, picture(100, 100, black, white)), digit.ErrBlank, "image is blank: no ink found"},
		{"all grey", encodePNG(t, picture(100, 100, color.Gray{128}, white)), digit.ErrBlank, "image is blank: no ink found"},
		{"all transparent", encodePNG(t, picture(100, 100, transparent, white)), digit.ErrBlank, "image is blank: no ink found"},
		{"transparent ink on white: transparency is background", encodePNG(t, picture(100, 100, white, transparent, bar)), digit.ErrBlank, "image is blank"},
		{"ink fainter than 10%", encodePNG(t, picture(100, 100, white, color.Gray{235}, bar)), digit.ErrBlank, "image is blank"},
		{"white JPEG", encodeJPEG(t, picture(100, 100, white, black), 10), digit.ErrBlank, "image is blank: no ink found"},
		{"white GIF", encodeGIF(t, picture(100, 100, white, black)), digit.ErrBlank, "image is blank: no ink found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := digit.FromImage(t.Context(), tc.data)
			if x != nil {
				t.Errorf("got an input with the error")
			}
			wantError(t, err, tc.kind, tc.msg)
			if tc.kind == digit.ErrCorrupt {
				if e, _ := errors.AsType[*digit.Error](err); e.Err == nil {
					t.Errorf("no cause kept for the logs")
				}
			}
		})
	}
}

// TestHugeHeaderCostsNothing checks that the dimensions in a header are
// refused before anything the size of the image is allocated.
func TestHugeHeaderCostsNothing(t *testing.T) {
	for _, data := range [][]byte{pngHeader(20000, 20000), gifHeader(20000, 20000), jpegHeader(20000, 20000),
		pngHeader(4097, 4096)} {
		const runs = 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range runs {
			if _, err := digit.FromImage(t.Context(), data); !errors.Is(err, digit.ErrTooLarge) {
				t.Fatalf("% x...: %v, want ErrTooLarge", data[:8], err)
			}
		}
		elapsed := time.Since(start) / runs
		runtime.ReadMemStats(&after)
		perCall := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("% x...: %d bytes allocated, %v per call", data[:8], perCall, elapsed)
		if perCall > 64<<10 {
			t.Errorf("% x...: %d bytes allocated per call, want < 64 KiB", data[:8], perCall)
		}
	}
}

// A 16-bit NRGBA PNG, a tiny image, a CMYK image and an image type of its
// own exercise Preprocess's other paths.
func TestPreprocessOtherImages(t *testing.T) {
	ref, err := digit.FromImage(t.Context(), encodePNG(t, picture(100, 100, white, black, ell...)))
	if err != nil {
		t.Fatal(err)
	}
	nrgba64 := image.NewNRGBA64(image.Rect(0, 0, 100, 100))
	draw.Draw(nrgba64, nrgba64.Rect, picture(100, 100, transparent, black, ell...), image.Point{}, draw.Src)
	cmyk := image.NewCMYK(image.Rect(0, 0, 100, 100))
	draw.Draw(cmyk, cmyk.Rect, picture(100, 100, white, black, ell...), image.Point{}, draw.Src)
	var moved []image.Rectangle
	for _, r := range scaled(ell, 2) {
		moved = append(moved, r.Add(image.Pt(100, 100)))
	}
	sub := picture(300, 300, black, white, moved...).SubImage(image.Rect(100, 100, 300, 300))
	for _, tc := range []struct {
		name string
		img  image.Image
	}{
		{"16-bit transparent PNG", mustDecode(t, encodePNG(t, nrgba64))},
		{"CMYK", cmyk},
		{"an image type of its own", plainImage{picture(100, 100, white, black, ell...)}},
		{"a sub-image not at the origin", sub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := digit.Preprocess(t.Context(), tc.img)
			if err != nil {
				t.Fatal(err)
			}
			checkInput(t, x)
			if d := meanAbsDiff(x, ref); d > 0.02 {
				t.Errorf("mean absolute difference from the PNG %.4f, want <= 0.02", d)
			}
		})
	}

	// A dot in a 3×3 image becomes a 20×20 square, centred: its centre of
	// mass (9.5, 9.5) moves 4.5 pixels, rounded to 5.
	x, err := digit.FromImage(t.Context(), encodePNG(t, picture(3, 3, white, black, image.Rect(1, 1, 2, 2))))
	if err != nil {
		t.Fatal(err)
	}
	checkInput(t, x)
	for i, v := range x {
		px, py := i%digit.Side, i/digit.Side
		if in := px >= 5 && px < 25 && py >= 5 && py < 25; in != (v == 1) || !in && v != 0 {
			t.Fatalf("x[%d] (%d, %d) = %v, want a 20×20 square of 1s at (5–24, 5–24)", i, px, py, v)
		}
	}

	// An *image.RGBA is premultiplied: colours above their alpha are not
	// valid, but are no reason to panic.
	bad := image.NewRGBA(image.Rect(0, 0, 10, 10))
	for i := range bad.Pix {
		bad.Pix[i] = 0xff
		if i%4 == 3 {
			bad.Pix[i] = uint8(i)
		}
	}
	if _, err := digit.Preprocess(t.Context(), bad); err != nil {
		checkRefusal(t, err)
	}

	_, err = digit.Preprocess(t.Context(), image.NewGray(image.Rect(0, 0, 5000, 1)))
	wantError(t, err, digit.ErrTooLarge, "image is 5000×1 pixels, more than 4096×4096")
	_, err = digit.Preprocess(t.Context(), image.NewGray(image.Rectangle{}))
	wantError(t, err, digit.ErrEmpty, "image has no pixels (0×0)")
}

// plainImage hides the concrete type of the image it holds.
type plainImage struct{ m image.Image }

func (p plainImage) ColorModel() color.Model { return p.m.ColorModel() }
func (p plainImage) Bounds() image.Rectangle { return p.m.Bounds() }
func (p plainImage) At(x, y int) color.Color { return p.m.At(x, y) }

func mustDecode(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := digit.Decode(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestConcurrent runs FromImage and PNG from several goroutines, for the race
// detector, and checks they agree.
func TestConcurrent(t *testing.T) {
	data := [][]byte{
		encodePNG(t, picture(200, 200, white, black, scaled(ell, 2)...)),
		encodeJPEG(t, picture(200, 200, white, black, scaled(ell, 2)...), 75),
	}
	want := make([][]float64, len(data))
	wantPNG := make([][]byte, len(data))
	for i, d := range data {
		var err error
		if want[i], err = digit.FromImage(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		if wantPNG[i], err = digit.PNG(want[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 10 {
				i := (g + k) % len(data)
				x, err := digit.FromImage(t.Context(), data[i])
				if err != nil || meanAbsDiff(x, want[i]) != 0 {
					t.Errorf("goroutine %d: %v, or a different input", g, err)
					return
				}
				if b, err := digit.PNG(x); err != nil || !bytes.Equal(b, wantPNG[i]) {
					t.Errorf("goroutine %d: PNG: %v, or a different PNG", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
