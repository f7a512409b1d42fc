package digit_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// allocated returns the bytes f allocates on the heap, with the garbage
// collector off: their sum is at least the peak f adds to the live heap.
func allocated(f func()) int64 {
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// TestInspectBoundsMemory checks Cost.Bytes against what FromImage
// allocates, for the costliest image of each kind Inspect accepts: the
// estimate must be at least what is allocated (so at least the peak), and
// at most twice as much (so that a budget it is reserved from is not
// wasted). Ink spans each image (cross), so that Preprocess crops nothing:
// its costliest case. Under -short the images are 1024×1024 (the costly
// kinds, those bounded by MaxCostlyPixels, included), not the largest; under
// the race detector, 512×512.
func TestInspectBoundsMemory(t *testing.T) {
	side := 4096         // the largest allowed
	cw, ch := 2048, 1024 // MaxCostlyPixels
	rgbSide := 3500      // an RGB JPEG of 3500×3500 needs 98 MB, within MaxDecodeBytes
	switch {
	case raceEnabled:
		side, cw, ch, rgbSide = 512, 512, 512, 512
	case testing.Short():
		side, cw, ch, rgbSide = 1024, 1024, 1024, 1024
	}
	rgb := baseline(rgbSide, rgbSide, rgb444)
	rgb.jfif, rgb.rgb = false, true
	progRGB := progressive(cw, ch, yuv444, digit.MaxProgressiveScans)
	progRGB.jfif, progRGB.adobe, progRGB.rgb = false, 0, true // Adobe transform 0: RGB
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"baseline JPEG, 4:4:4", baseline(side, side, yuv444).encode()},
		{"baseline JPEG, 4:2:0", baseline(side, side, yuv420).encode()},
		{"JPEG from image/jpeg (4:2:0), quality 90", encodeJPEG(t, picture(side, side, white, black, cross(side, side)...), 90)},
		{"baseline JPEG, grey", baseline(side, side, grey1).encode()},
		{"baseline JPEG, RGB", rgb.encode()},
		{"progressive JPEG, 4:4:4, most scans", progressive(cw, ch, yuv444, digit.MaxProgressiveScans).encode()},
		{"progressive JPEG, 4:2:0, most scans", progressive(cw, ch, yuv420, digit.MaxProgressiveScans).encode()},
		{"progressive JPEG, grey, most scans", progressive(cw, ch, grey1, digit.MaxProgressiveScans).encode()},
		{"progressive JPEG, RGB, most scans", progRGB.encode()},
		{"PNG, 8-bit RGBA", pngImage{w: side, h: side, depth: 8, ct: 6, ink: cross(side, side)}.encode(t)},
		{"PNG, 8-bit RGB, from image/png", encodePNG(t, picture(side, side, white, black, cross(side, side)...))},
		{"PNG, 8-bit palette", pngImage{w: side, h: side, depth: 8, ct: 3, ink: cross(side, side)}.encode(t)},
		{"PNG, 8-bit grey", pngImage{w: side, h: side, depth: 8, ct: 0, ink: cross(side, side)}.encode(t)},
		{"PNG, 8-bit grey with tRNS", pngImage{w: side, h: side, depth: 8, ct: 0, trns: true, ink: cross(side, side)}.encode(t)},
		{"PNG, 16-bit RGBA", pngImage{w: cw, h: ch, depth: 16, ct: 6, ink: cross(cw, ch)}.encode(t)},
		{"PNG, 16-bit grey", pngImage{w: cw, h: ch, depth: 16, ct: 0, ink: cross(cw, ch)}.encode(t)},
		{"PNG, 8-bit RGBA, interlaced", pngImage{w: cw, h: ch, depth: 8, ct: 6, interlaced: true, ink: cross(cw, ch)}.encode(t)},
		{"PNG, 16-bit RGBA, interlaced", pngImage{w: cw, h: ch, depth: 16, ct: 6, interlaced: true, ink: cross(cw, ch)}.encode(t)},
		{"GIF", gifImage(t, side, side, cross(side, side), false)},
		{"GIF, interlaced", gifImage(t, side, side, cross(side, side), true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := digit.Inspect(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			var x []float64
			got := allocated(func() { x, err = digit.FromImage(t.Context(), tc.data) })
			if err != nil {
				t.Fatal(err)
			}
			checkInput(t, x)
			t.Logf("%s of %d×%d, %d bytes of data: allocated %d bytes, estimate %d (%.3f×); work %.1f passes",
				c.Format, c.Width, c.Height, len(tc.data), got, c.Bytes, float64(c.Bytes)/float64(got),
				float64(c.Work)/float64(c.Width*c.Height))
			if got > c.Bytes {
				t.Errorf("FromImage allocated %d bytes, more than the estimate, %d", got, c.Bytes)
			}
			if c.Bytes > 2*got {
				t.Errorf("the estimate, %d bytes, is more than twice what FromImage allocated, %d", c.Bytes, got)
			}
		})
	}
}
