package digit_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/mnist-go/nnserver/pkg/digit"
)

var kinds = []error{digit.ErrPixels, digit.ErrEmpty, digit.ErrTooLarge, digit.ErrBase64,
	digit.ErrFormat, digit.ErrCorrupt, digit.ErrBlank, digit.ErrTooCostly}

// checkRefusal checks that err is an *digit.Error of one of the kinds, with
// a message.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	e, ok := errors.AsType[*digit.Error](err)
	if !ok {
		t.Fatalf("error %q is a %T, want a *digit.Error", err, err)
	}
	for _, k := range kinds {
		if e.Kind == k {
			if e.Message == "" {
				t.Fatalf("error of kind %v has no message", k)
			}
			return
		}
	}
	t.Fatalf("error %q has kind %v, not one of the package's", err, e.Kind)
}

// structures are small images of the structures Inspect reads, made by
// gen_test.go's writers: seeds for the fuzz targets.
func structures(tb testing.TB) [][]byte {
	restarts := baseline(40, 30, yuv420)
	restarts.restart, restarts.junk = 2, true
	twice := baseline(16, 16, yuv444)
	twice.scans = append(twice.scans, jpegScan{comps: []int{0}, se: 63})
	rgb := progressive(24, 16, rgb444, 5)
	rgb.jfif, rgb.adobe, rgb.rgb = false, 0, true
	return [][]byte{
		baseline(24, 16, yuv444).encode(),
		restarts.encode(),
		twice.encode(),
		progressive(33, 17, yuv420, 8).encode(),
		progressive(16, 16, grey1, digit.MaxProgressiveScans+1).encode(),
		rgb.encode(),
		func() []byte { j := baseline(16, 16, cmyk); j.adobe = 2; return j.encode() }(),
		scanBomb(64, 64, 30),
		jpegSOF(0xc3),
		pngImage{w: 20, h: 10, depth: 16, ct: 6, interlaced: true, ink: cross(20, 10)}.encode(tb),
		pngImage{w: 19, h: 11, depth: 2, ct: 0, trns: true, ink: cross(19, 11)}.encode(tb),
		pngImage{w: 17, h: 9, depth: 4, ct: 3, interlaced: true, ink: cross(17, 9)}.encode(tb),
		pngDeclaring(4096, 4096, 16, 6, true),
		gifImage(tb, 20, 10, cross(20, 10), true),
	}
}

// FuzzFromImage: whatever the bytes, FromImage returns a valid input or an
// *digit.Error, and does not panic; it refuses what Inspect refuses, with
// the same error, and what Inspect accepts fails only in decoding. The
// seed corpus, testdata/fuzz/FuzzFromImage, has small PNGs (grey, RGB,
// 16-bit, palette, transparent, 1×1, truncated), JPEGs (colour, grey), a
// GIF, and 20000×20000 headers of all three; structures adds progressive,
// restart-marked, RGB and CMYK JPEGs, interlaced PNGs and GIFs, a small
// scan bomb.
func FuzzFromImage(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("GIF89a"))
	f.Add([]byte("\xff\xd8\xff"))
	for _, s := range structures(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ierr := digit.Inspect(data)
		x, err := digit.FromImage(t.Context(), data)
		if ierr != nil && (err == nil || err.Error() != ierr.Error()) {
			t.Fatalf("Inspect refused it (%v), FromImage said %v", ierr, err)
		}
		if err != nil {
			if x != nil {
				t.Fatal("an input with an error")
			}
			checkRefusal(t, err)
			if e, _ := errors.AsType[*digit.Error](err); ierr == nil &&
				e.Kind != digit.ErrCorrupt && e.Kind != digit.ErrEmpty && e.Kind != digit.ErrBlank {
				t.Fatalf("Inspect accepted it, FromImage refused it with kind %v: %v", e.Kind, err)
			}
			return
		}
		if len(x) != digit.Pixels {
			t.Fatalf("%d values", len(x))
		}
		top := 0.0
		for i, v := range x {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("x[%d] = %v", i, v)
			}
			top = max(top, v)
		}
		if top != 1 {
			t.Fatalf("strongest pixel %v, want 1", top)
		}
		if _, err := digit.PNG(x); err != nil {
			t.Fatalf("PNG of an input FromImage made: %v", err)
		}
	})
}

// FuzzInspect: whatever the bytes, Inspect returns a cost within the bounds
// or an *digit.Error, the same each time, and does not panic.
func FuzzInspect(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\xff\xd8\xff\xc2"))
	f.Add(pngHeader(4096, 4096))
	f.Add(gifHeader(4096, 4096))
	f.Add(jpegHeader(4096, 4096))
	for _, s := range structures(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := digit.Inspect(data)
		if c2, err2 := digit.Inspect(data); c2 != c || fmt.Sprint(err2) != fmt.Sprint(err) {
			t.Fatalf("twice: %+v, %v; then %+v, %v", c, err, c2, err2)
		}
		if err != nil {
			checkRefusal(t, err)
			if c != (digit.Cost{}) {
				t.Fatalf("a cost with an error: %+v", c)
			}
			return
		}
		if c.Format != "PNG" && c.Format != "JPEG" && c.Format != "GIF" {
			t.Fatalf("format %q", c.Format)
		}
		if c.Width < 1 || c.Width > digit.MaxImageSide || c.Height < 1 || c.Height > digit.MaxImageSide {
			t.Fatalf("%d×%d", c.Width, c.Height)
		}
		if c.Bytes <= 0 || c.Bytes > digit.MaxDecodeBytes || c.Work < 0 { // an empty GIF frame is no work
			t.Fatalf("%d bytes, work %d", c.Bytes, c.Work)
		}
	})
}

// FuzzDecodeBase64Image: whatever the text, DecodeBase64Image returns at
// most MaxImageBytes or an *digit.Error, and what it returns is what the
// text encodes.
func FuzzDecodeBase64Image(f *testing.F) {
	for _, s := range []string{"", "iVBORw0KGgo=", "iVBORw0KGgo", "-_-_", "data:image/png;base64,iVBORw0KGgo=",
		"data:image/jpeg;base64,/9j/", "data:text/plain,hi", "data:image/png;base64", "QQ\r\nQQ==", "===="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, err := digit.DecodeBase64Image(s)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(data) == 0 || len(data) > digit.MaxImageBytes {
			t.Fatalf("%d bytes", len(data))
		}
		// What it decoded, encoded again, is the text's payload (up to the
		// alphabet, the padding and spaces): decoding that again agrees.
		again, err := digit.DecodeBase64Image(base64.StdEncoding.EncodeToString(data))
		if err != nil || string(again) != string(data) {
			t.Fatalf("re-encoded: %v, %q != %q", err, again, data)
		}
	})
}
