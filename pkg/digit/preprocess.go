package digit

import (
	"context"
	"image"
	"math"
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
	// ctxRows is how many rows of the image the loops go through between
	// looks at their context: 64 rows of 4096 pixels are a few hundred
	// microseconds of work.
	ctxRows = 64
)

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
//     ratio, by exact area averaging: each pixel is the mean of the part of
//     the box it covers (anti-aliased, with no ringing, and in time linear in
//     the box's area: a 4096×4096 box costs as little per pixel as a small
//     one). Measured on 1,960 MNIST test digits drawn 280×280, it loses
//     nothing against MNIST's own pixels.
//  5. Place it in a 28×28 field so that its centre of mass is at pixel
//     (14, 14), the centre of the field, to the nearest whole pixel (so
//     nothing is blurred), clipping what would fall outside.
//  6. Normalise to [0, 1], stretched so that the strongest pixel is 1 (as in
//     MNIST, where nearly every digit reaches 255).
//
// Images wider or taller than MaxImageSide are refused (ErrTooLarge), and so
// are empty ones (ErrEmpty). 16-bit images are read to 8 bits, as MNIST's.
// Its loops over the image look at ctx every 64 rows: once ctx is done, it
// stops with an error wrapping ctx.Err() (not an *Error).
//
// Besides the image, it allocates about one byte a pixel (the ink plane;
// see Inspect).
func Preprocess(ctx context.Context, img image.Image) ([]float64, error) {
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy()); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, stopped(err)
	}
	read := spans(img)
	bg, ok, err := background(ctx, read, b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBlank()
	}
	ink, rowMax, colMax, err := inkPlane(ctx, read, b, bg)
	if err != nil {
		return nil, err
	}

	peak := maxOf(rowMax)
	if peak < minInk {
		return nil, errBlank()
	}
	thr := uint8(math.Ceil(inkShare * float64(peak)))
	x0, x1 := firstAtLeast(colMax, thr), lastAtLeast(colMax, thr)+1
	y0, y1 := firstAtLeast(rowMax, thr), lastAtLeast(rowMax, thr)+1
	w, h := x1-x0, y1-y0
	crop := ink[y0*b.Dx()+x0:]
	for y := range h {
		if err := every(ctx, y); err != nil {
			return nil, err
		}
		row := crop[y*b.Dx() : y*b.Dx()+w]
		for x, v := range row {
			if v < thr {
				row[x] = 0
			}
		}
	}

	// Fit the box in Box×Box, keeping the aspect ratio.
	long := float64(max(w, h))
	sw := max(1, int(math.Round(float64(w)*Box/long)))
	sh := max(1, int(math.Round(float64(h)*Box/long)))
	small, err := resample(ctx, crop, b.Dx(), w, h, sw, sh)
	if err != nil {
		return nil, err
	}

	// Centre of mass, in pixel indices, moved to pixel (14, 14): where MNIST
	// has it (the mean over its test set is (14.01, 13.99)).
	var sum, sx, sy float64
	for y := range sh {
		for x, v := range small[y*sw : (y+1)*sw] {
			sum += float64(v)
			sx += float64(v) * float64(x)
			sy += float64(v) * float64(y)
		}
	}
	if !(sum > 0) { // ink so sparse that averaging left nothing
		return nil, errBlank()
	}
	dx := int(math.Round(Side/2 - sx/sum))
	dy := int(math.Round(Side/2 - sy/sum))

	out := make([]float64, Pixels)
	var top float64
	for y := range sh {
		ty := y + dy
		if ty < 0 || ty >= Side {
			continue
		}
		for x, v := range small[y*sw : (y+1)*sw] {
			tx := x + dx
			if tx < 0 || tx >= Side {
				continue
			}
			out[ty*Side+tx] = float64(v)
			top = max(top, float64(v))
		}
	}
	if !(top > 0) {
		return nil, errBlank()
	}
	for i := range out {
		out[i] = min(out[i]/top, 1)
	}
	return out, nil
}

func errBlank() *Error { return errorf(ErrBlank, "image is blank: no ink found") }

// every returns ctx's error, wrapped, every ctxRows rows (y counts them).
func every(ctx context.Context, y int) error {
	if y%ctxRows != 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return stopped(err)
	}
	return nil
}

// spanFunc reads pixels [x0, x1) of row y (in image coordinates) as 8-bit
// premultiplied luminance and alpha (lum <= alpha).
type spanFunc func(x0, x1, y int, lum, alpha []uint8)

// luminance returns the luminance of 8- or 16-bit r, g, b with the weights
// of ITU-R BT.601 (0.299, 0.587, 0.114), as color.GrayModel and JPEG's Y.
func luminance(r, g, b uint32) uint32 { return (19595*r + 38470*g + 7471*b + 1<<15) >> 16 }

// spans returns a spanFunc for img: direct for the types the decoders return
// for 8-bit images, generic (and 16-bit values rounded to 8) for the others.
func spans(img image.Image) spanFunc {
	switch m := img.(type) {
	case *image.Gray:
		return func(x0, x1, y int, lum, alpha []uint8) {
			i := m.PixOffset(x0, y)
			copy(lum, m.Pix[i:i+x1-x0])
			fill(alpha[:x1-x0], 0xff)
		}
	case *image.YCbCr: // JPEG: Y is the luminance
		return func(x0, x1, y int, lum, alpha []uint8) {
			i := m.YOffset(x0, y)
			copy(lum, m.Y[i:i+x1-x0])
			fill(alpha[:x1-x0], 0xff)
		}
	case *image.RGBA: // premultiplied already
		return func(x0, x1, y int, lum, alpha []uint8) {
			i := m.PixOffset(x0, y)
			pix := m.Pix[i : i+4*(x1-x0)]
			for k := range x1 - x0 {
				p := pix[4*k : 4*k+4 : 4*k+4]
				lum[k] = uint8(luminance(uint32(p[0]), uint32(p[1]), uint32(p[2])))
				alpha[k] = p[3]
			}
		}
	case *image.NRGBA:
		return func(x0, x1, y int, lum, alpha []uint8) {
			i := m.PixOffset(x0, y)
			pix := m.Pix[i : i+4*(x1-x0)]
			for k := range x1 - x0 {
				p := pix[4*k : 4*k+4 : 4*k+4]
				l := luminance(uint32(p[0]), uint32(p[1]), uint32(p[2]))
				lum[k] = uint8((l*uint32(p[3]) + 127) / 255)
				alpha[k] = p[3]
			}
		}
	case *image.Paletted:
		// Indices beyond the palette (which image.Paletted.At would panic
		// on) read as transparent.
		var tl, ta [256]uint8
		for i, c := range m.Palette {
			if i < len(tl) && c != nil {
				tl[i], ta[i] = premultiplied(c.RGBA())
			}
		}
		return func(x0, x1, y int, lum, alpha []uint8) {
			i := m.PixOffset(x0, y)
			for k, p := range m.Pix[i : i+x1-x0] {
				lum[k], alpha[k] = tl[p], ta[p]
			}
		}
	case image.RGBA64Image: // 16-bit PNGs, CMYK JPEGs: no allocation per pixel
		return func(x0, x1, y int, lum, alpha []uint8) {
			for x := x0; x < x1; x++ {
				c := m.RGBA64At(x, y)
				lum[x-x0], alpha[x-x0] = premultiplied(uint32(c.R), uint32(c.G), uint32(c.B), uint32(c.A))
			}
		}
	default:
		return func(x0, x1, y int, lum, alpha []uint8) {
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
func premultiplied(r, g, b, a uint32) (lum, alpha uint8) {
	return uint8(min(luminance(r, g, b), a) * 0xff / 0xffff), uint8(a * 0xff / 0xffff)
}

func fill(b []uint8, v uint8) {
	for i := range b {
		b[i] = v
	}
}

// background returns the background's luminance (0 black, 255 white): the
// median of the opaque pixels of the outermost ring if at least half of the
// ring is opaque; otherwise white if the image's opaque parts are dark on
// average, black if they are light. ok is false if no pixel is visible at
// all. err is not nil if ctx is done.
func background(ctx context.Context, read spanFunc, b image.Rectangle) (bg uint8, ok bool, err error) {
	w := b.Dx()
	lum, alpha := make([]uint8, w), make([]uint8, w)
	var hist [256]int
	ring, opaque := 0, 0
	add := func(l, a []uint8) {
		for k := range l {
			ring++
			if a[k] >= 0x80 {
				opaque++
				// Unpremultiplied; min, for an *image.RGBA whose colours
				// exceed their alpha (decoders never make one).
				hist[min((uint32(l[k])*0xff+uint32(a[k])/2)/uint32(a[k]), 0xff)]++
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
				return uint8(v), true, nil
			}
		}
	}
	// A transparent background: composite over the colour the ink stands
	// out from.
	var sumLum, sumAlpha uint64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		if err := every(ctx, y-b.Min.Y); err != nil {
			return 0, false, err
		}
		read(b.Min.X, b.Max.X, y, lum, alpha)
		for k := range lum {
			sumLum += uint64(lum[k])
			sumAlpha += uint64(alpha[k])
		}
	}
	if sumAlpha < 0x80 { // not even one opaque pixel's worth
		return 0, false, nil
	}
	if 2*sumLum < sumAlpha {
		return 0xff, true, nil
	}
	return 0, true, nil
}

// inkPlane composites img over the background bg and measures each pixel's
// ink: how far it is from bg towards the other end (black for a light
// background, white for a dark one), from 0 to 255 for the whole way. It
// returns the w×h plane, row-major, and the strongest ink of each row and of
// each column; or an error if ctx is done.
func inkPlane(ctx context.Context, read spanFunc, b image.Rectangle, bg uint8) (ink, rowMax, colMax []uint8, err error) {
	w, h := b.Dx(), b.Dy()
	ink = make([]uint8, w*h)
	rowMax, colMax = make([]uint8, h), make([]uint8, w)
	lum, alpha := make([]uint8, w), make([]uint8, w)

	// The ink of each composited grey level.
	var lut [256]uint8
	for g := range lut {
		var v float64
		if bg >= 0x80 {
			v = float64(int(bg)-g) / float64(bg)
		} else {
			v = float64(g-int(bg)) / float64(0xff-int(bg))
		}
		lut[g] = uint8(math.Round(0xff * max(v, 0)))
	}
	over := uint32(bg) // what shows through transparency

	for y := range h {
		if err := every(ctx, y); err != nil {
			return nil, nil, nil, err
		}
		read(b.Min.X, b.Max.X, b.Min.Y+y, lum, alpha)
		row := ink[y*w : (y+1)*w]
		lum, alpha := lum[:len(row)], alpha[:len(row)]
		var rm uint8
		for x := range row {
			g := uint32(lum[x]) + ((0xff-uint32(alpha[x]))*over+0x7f)/0xff
			q := lut[min(g, 0xff)]
			row[x] = q
			rm = max(rm, q)
			colMax[x] = max(colMax[x], q)
		}
		rowMax[y] = rm
	}
	return ink, rowMax, colMax, nil
}

// resample scales the w×h grey image at src (rows stride apart) to dw×dh by
// area averaging: each output pixel is the mean of the part of the source it
// covers, a source pixel partly covered counting by the part. Shrinking, that
// is anti-aliasing; enlarging, each source pixel becomes a block with
// blended edges. It returns the dw×dh values, row-major, in 0–255; or an
// error if ctx is done.
func resample(ctx context.Context, src []uint8, stride, w, h, dw, dh int) ([]float32, error) {
	xs, ys := taps(w, dw), taps(h, dh)
	tmp := make([]float32, dw*h) // scaled across, not yet down
	for y := range h {
		if err := every(ctx, y); err != nil {
			return nil, err
		}
		row := src[y*stride : y*stride+w]
		t := tmp[y*dw : (y+1)*dw]
		for j := range t {
			var s float32
			for _, tp := range xs.of(j) {
				s += tp.w * float32(row[tp.i])
			}
			t[j] = s
		}
	}
	out := make([]float32, dw*dh)
	for k := range dh {
		o := out[k*dw : (k+1)*dw]
		for _, tp := range ys.of(k) {
			t := tmp[int(tp.i)*dw : (int(tp.i)+1)*dw]
			for j := range o {
				o[j] += tp.w * t[j]
			}
		}
	}
	return out, nil
}

// tapList lists, for each of dn output pixels, the source pixels it covers
// and the weights they have in its mean.
type tapList struct {
	start []int // output pixel j's taps are all[start[j]:start[j+1]]
	all   []tap
}

type tap struct {
	i int32   // source pixel
	w float32 // its share of the output pixel
}

func (l *tapList) of(j int) []tap { return l.all[l.start[j]:l.start[j+1]] }

// taps returns the tapList for scaling n pixels to dn. In units of 1/dn of a
// source pixel, output pixel j covers [j·n, (j+1)·n) and source pixel i
// covers [i·dn, (i+1)·dn), so the overlaps, and the weights, are exact.
func taps(n, dn int) tapList {
	l := tapList{start: make([]int, dn+1), all: make([]tap, 0, n+dn)}
	for j := range dn {
		l.start[j] = len(l.all)
		lo, hi := j*n, (j+1)*n
		for i := lo / dn; i < n && i*dn < hi; i++ {
			if overlap := min(hi, (i+1)*dn) - max(lo, i*dn); overlap > 0 {
				l.all = append(l.all, tap{int32(i), float32(overlap) / float32(n)})
			}
		}
	}
	l.start[dn] = len(l.all)
	return l
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
