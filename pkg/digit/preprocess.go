package digit

import (
	"image"
	"math"

	"golang.org/x/image/draw"
)

// Tuning of Preprocess, in grey levels 0–255 of the ink plane (0 background,
// 255 the strongest ink the background allows: black on white).
const (
	// minInk is the faintest strongest mark that counts as ink: 10% of the
	// full contrast. A fainter image is blank (JPEG noise on a uniform image
	// is a few levels).
	minInk = 26
	// inkShare is the share of the strongest mark that a pixel must reach to
	// be ink (to count in the bounding box); fainter ones are background
	// noise — JPEG ringing, paper grain — and are cleared.
	inkShare = 0.2
)

// kernel resamples the cropped digit to fit the 20×20 box. The bilinear
// (tent) kernel is widened by the scale factor when shrinking, so each output
// pixel averages the area it covers: anti-aliased like MNIST's downsampling,
// with no ringing. (ApproxBiLinear would sample only 4 pixels per output
// pixel and lose thin strokes when shrinking 10×.)
var kernel = draw.BiLinear

// Preprocess turns a decoded image of a digit into a network input, the way
// MNIST was made:
//
//  1. Greyscale: each pixel's luminance (0.299 R + 0.587 G + 0.114 B), with
//     transparency composited over the background colour found in step 2.
//  2. Background: the median luminance of the outermost ring of pixels. If
//     most of that ring is transparent, the background is white for dark ink
//     and black for light ink (from the mean colour of the opaque pixels).
//     Ink is what differs from the background, towards dark on a light
//     background (which inverts the image) and towards light on a dark one,
//     measured as a share of the contrast available: black ink on a white,
//     grey or cream background is 1. The result has ink high, background 0.
//  3. Crop to the bounding box of the ink: pixels reaching 20% of the
//     strongest ink, so that JPEG noise does not count; fainter pixels are
//     cleared. If no pixel reaches 10% of the full contrast, the image is
//     blank (ErrBlank).
//  4. Scale the box so that its longer side is 20 pixels, keeping the aspect
//     ratio, with area-averaging (anti-aliased) resampling.
//  5. Place it in a 28×28 field so that its centre of mass is at pixel
//     (14, 14), the centre of the field (to the nearest whole pixel, so
//     nothing is blurred), clipping what would fall outside.
//  6. Normalise to [0, 1], stretched so that the strongest pixel is 1 (as in
//     MNIST, where nearly every digit reaches 255).
//
// Images wider or taller than MaxImageSide are refused (ErrTooLarge), and so
// are empty ones (ErrEmpty).
func Preprocess(img image.Image) ([]float64, error) {
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy()); err != nil {
		return nil, err
	}
	read := spans(img)
	bg, ok := background(read, b)
	if !ok {
		return nil, errBlank()
	}
	ink, rowMax, colMax := inkPlane(read, b, bg)

	peak := maxOf(rowMax)
	if peak < minInk {
		return nil, errBlank()
	}
	thr := uint8(math.Ceil(inkShare * float64(peak)))
	box := image.Rect(firstAtLeast(colMax, thr), firstAtLeast(rowMax, thr),
		lastAtLeast(colMax, thr)+1, lastAtLeast(rowMax, thr)+1)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		row := ink.Pix[y*ink.Stride+box.Min.X : y*ink.Stride+box.Max.X]
		for x, v := range row {
			if v < thr {
				row[x] = 0
			}
		}
	}

	// Fit the box in Box×Box, keeping the aspect ratio.
	w, h := box.Dx(), box.Dy()
	long := float64(max(w, h))
	sw := max(1, int(math.Round(float64(w)*Box/long)))
	sh := max(1, int(math.Round(float64(h)*Box/long)))
	small := image.NewRGBA(image.Rect(0, 0, sw, sh))
	kernel.Scale(small, small.Rect, ink, box, draw.Src, nil)

	// Centre of mass, in pixel indices, moved to pixel (14, 14): where MNIST
	// has it (the mean over its test set is (14.01, 13.99)).
	var sum, sx, sy float64
	for y := range sh {
		for x := range sw {
			v := float64(small.Pix[y*small.Stride+4*x])
			sum += v
			sx += v * float64(x)
			sy += v * float64(y)
		}
	}
	if sum == 0 { // ink so sparse that averaging left nothing
		return nil, errBlank()
	}
	dx := int(math.Round(Side/2 - sx/sum))
	dy := int(math.Round(Side/2 - sy/sum))

	out := make([]float64, Pixels)
	var top uint8
	for y := range sh {
		ty := y + dy
		if ty < 0 || ty >= Side {
			continue
		}
		for x := range sw {
			tx := x + dx
			if tx < 0 || tx >= Side {
				continue
			}
			v := small.Pix[y*small.Stride+4*x]
			out[ty*Side+tx] = float64(v)
			top = max(top, v)
		}
	}
	if top == 0 {
		return nil, errBlank()
	}
	for i := range out {
		out[i] /= float64(top)
	}
	return out, nil
}

func errBlank() *Error { return errorf(ErrBlank, "image is blank: no ink found") }

// spanFunc reads pixels [x0, x1) of row y (in image coordinates) as
// premultiplied luminance and alpha, both in [0, 1].
type spanFunc func(x0, x1, y int, lum, alpha []float32)

// luminance weights (ITU-R BT.601, as color.GrayModel and JPEG's Y).
const wr, wg, wb = 0.299, 0.587, 0.114

// spans returns a spanFunc for img: direct for the types the decoders return
// for 8-bit images, generic for the others.
func spans(img image.Image) spanFunc {
	switch m := img.(type) {
	case *image.Gray:
		return func(x0, x1, y int, lum, alpha []float32) {
			i := m.PixOffset(x0, y)
			for k, p := range m.Pix[i : i+x1-x0] {
				lum[k], alpha[k] = float32(p)*(1.0/255), 1
			}
		}
	case *image.YCbCr: // JPEG: Y is the luminance
		return func(x0, x1, y int, lum, alpha []float32) {
			i := m.YOffset(x0, y)
			for k, p := range m.Y[i : i+x1-x0] {
				lum[k], alpha[k] = float32(p)*(1.0/255), 1
			}
		}
	case *image.RGBA: // premultiplied already
		return func(x0, x1, y int, lum, alpha []float32) {
			i := m.PixOffset(x0, y)
			pix := m.Pix[i : i+4*(x1-x0)]
			for k := range x1 - x0 {
				p := pix[4*k : 4*k+4 : 4*k+4]
				lum[k] = (wr*float32(p[0]) + wg*float32(p[1]) + wb*float32(p[2])) * (1.0 / 255)
				alpha[k] = float32(p[3]) * (1.0 / 255)
			}
		}
	case *image.NRGBA:
		return func(x0, x1, y int, lum, alpha []float32) {
			i := m.PixOffset(x0, y)
			pix := m.Pix[i : i+4*(x1-x0)]
			for k := range x1 - x0 {
				p := pix[4*k : 4*k+4 : 4*k+4]
				a := float32(p[3]) * (1.0 / 255)
				lum[k] = (wr*float32(p[0]) + wg*float32(p[1]) + wb*float32(p[2])) * (1.0 / 255) * a
				alpha[k] = a
			}
		}
	case *image.Paletted:
		// Indices beyond the palette (which image.Paletted.At would panic
		// on) read as transparent.
		var tl, ta [256]float32
		for i, c := range m.Palette {
			if i < 256 && c != nil {
				tl[i], ta[i] = premultiplied(c.RGBA())
			}
		}
		return func(x0, x1, y int, lum, alpha []float32) {
			i := m.PixOffset(x0, y)
			for k, p := range m.Pix[i : i+x1-x0] {
				lum[k], alpha[k] = tl[p], ta[p]
			}
		}
	case image.RGBA64Image: // 16-bit PNGs, CMYK JPEGs: no allocation per pixel
		return func(x0, x1, y int, lum, alpha []float32) {
			for x := x0; x < x1; x++ {
				c := m.RGBA64At(x, y)
				lum[x-x0], alpha[x-x0] = premultiplied(uint32(c.R), uint32(c.G), uint32(c.B), uint32(c.A))
			}
		}
	default:
		return func(x0, x1, y int, lum, alpha []float32) {
			for x := x0; x < x1; x++ {
				lum[x-x0], alpha[x-x0] = 0, 0
				if c := img.At(x, y); c != nil {
					lum[x-x0], alpha[x-x0] = premultiplied(c.RGBA())
				}
			}
		}
	}
}

// premultiplied converts color.Color.RGBA's 16-bit premultiplied values.
func premultiplied(r, g, b, a uint32) (lum, alpha float32) {
	return (wr*float32(r) + wg*float32(g) + wb*float32(b)) * (1.0 / 0xffff), float32(a) * (1.0 / 0xffff)
}

// background returns the background's luminance (0 black, 1 white): the
// median of the opaque pixels of the outermost ring if at least half of the
// ring is opaque; otherwise white if the image's opaque parts are dark on
// average, black if they are light. ok is false if no pixel is visible at all.
func background(read spanFunc, b image.Rectangle) (bg float32, ok bool) {
	w := b.Dx()
	lum, alpha := make([]float32, w), make([]float32, w)
	var hist [256]int
	ring, opaque := 0, 0
	add := func(l, a []float32) {
		for k := range l {
			ring++
			if a[k] >= 0.5 {
				opaque++
				hist[int(min(l[k]/a[k], 1)*255+0.5)]++
			}
		}
	}
	read(b.Min.X, b.Max.X, b.Min.Y, lum, alpha)
	add(lum, alpha)
	if b.Dy() > 1 {
		read(b.Min.X, b.Max.X, b.Max.Y-1, lum, alpha)
		add(lum, alpha)
	}
	for y := b.Min.Y + 1; y < b.Max.Y-1; y++ {
		read(b.Min.X, b.Min.X+1, y, lum, alpha)
		add(lum[:1], alpha[:1])
		if w > 1 {
			read(b.Max.X-1, b.Max.X, y, lum, alpha)
			add(lum[:1], alpha[:1])
		}
	}
	if 2*opaque >= ring {
		seen := 0
		for v, n := range hist {
			seen += n
			if 2*seen >= opaque {
				return float32(v) / 255, true
			}
		}
	}
	// A transparent background: composite over the colour the ink stands
	// out from.
	var sumLum, sumAlpha float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		read(b.Min.X, b.Max.X, y, lum, alpha)
		for k := range lum {
			sumLum += float64(lum[k])
			sumAlpha += float64(alpha[k])
		}
	}
	if sumAlpha < 0.5 { // not even one opaque pixel's worth
		return 0, false
	}
	if sumLum/sumAlpha < 0.5 {
		return 1, true
	}
	return 0, true
}

// inkPlane composites img over the background bg and measures each pixel's
// ink: how far it is from bg towards the other end (black for a light
// background, white for a dark one), from 0 to 255 for the whole way. It
// also returns the strongest ink of each row and of each column.
func inkPlane(read spanFunc, b image.Rectangle, bg float32) (ink *image.Gray, rowMax, colMax []uint8) {
	w, h := b.Dx(), b.Dy()
	ink = image.NewGray(image.Rect(0, 0, w, h))
	rowMax, colMax = make([]uint8, h), make([]uint8, w)
	lum, alpha := make([]float32, w), make([]float32, w)
	light := bg >= 0.5
	var scale float32 // ink per unit of distance from bg
	if light {
		scale = -255 / bg
	} else {
		scale = 255 / (1 - bg)
	}
	for y := range h {
		read(b.Min.X, b.Max.X, b.Min.Y+y, lum, alpha)
		row := ink.Pix[y*ink.Stride : y*ink.Stride+w]
		var rm uint8
		for x := range row {
			g := lum[x] + (1-alpha[x])*bg // composite over the background
			v := (g - bg) * scale
			var q uint8
			switch {
			case v >= 254.5:
				q = 255
			case v >= 0.5:
				q = uint8(v + 0.5)
			}
			row[x] = q
			rm = max(rm, q)
			colMax[x] = max(colMax[x], q)
		}
		rowMax[y] = rm
	}
	return ink, rowMax, colMax
}

func maxOf(xs []uint8) uint8 {
	var m uint8
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func firstAtLeast(xs []uint8, thr uint8) int {
	for i, x := range xs {
		if x >= thr {
			return i
		}
	}
	return 0
}

func lastAtLeast(xs []uint8, thr uint8) int {
	for i := len(xs) - 1; i >= 0; i-- {
		if xs[i] >= thr {
			return i
		}
	}
	return len(xs) - 1
}
