// Package render draws MNIST digits as PNG images for the example endpoints.
//
// The old Python service drew each example with matplotlib —
// imshow(image, cmap='gray') under the title "Predicted: P | Actual: A" — and
// saved a 300×300 RGBA PNG. DigitPNG draws the same picture without the axes:
// a white canvas, the caption centred at the top in dark text, and below it the
// 28×28 digit scaled up 9× with nearest-neighbour sampling (crisp pixels), in
// the grey colour map (0 → black, 255 → white).
package render

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/draw"
	"sync"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Size is the width and height of the rendered image, in pixels.
const Size = 300

// DigitSide is the side of an MNIST image, in pixels; a digit has
// DigitSide*DigitSide bytes.
const DigitSide = 28

// Layout of the 300×300 canvas: margins of 8 px at top and bottom, the caption
// band (20 px) at the top, a 12 px gap, then the 252×252 digit.
const (
	scale      = 9                          // digit magnification
	digitW     = DigitSide * scale          // 252
	digitX     = (Size - digitW) / 2        // 24: digit centred horizontally
	digitY     = Size - 8 - digitW          // 40: 8 px bottom margin
	textY      = 8                          // top of the caption band
	textH      = 20                         // caption height (13 px glyphs × 1.5, rounded up)
	textW      = captionLen * 7 * 3 / 2     // 252: caption width (7 px advance × 1.5)
	textX      = (Size - textW) / 2         // 24: caption centred horizontally
	ink        = 0x22                       // caption colour: dark grey #222222
	paper      = 0xff                       // background: white
	stride     = Size * 4                   // bytes per RGBA row
	rowLen     = 1 + stride                 // PNG scanline: filter byte + pixels
	pixLen     = DigitSide * DigitSide      // 784
	caption    = "Predicted: 0 | Actual: 0" // template; digits are replaced
	captionLen = len(caption)               // 24 characters
)

// DigitPNG renders a 28×28 grey image (784 bytes, row-major, 0 = background,
// 255 = ink) as a 300×300 RGBA PNG: white background, the caption
// "Predicted: P | Actual: A" centred at the top in dark text, and the digit
// scaled up 9× (nearest-neighbour, 252×252 px) centred below it, drawn with the
// grey colour map (byte v becomes the opaque grey (v, v, v)).
//
// It returns an error if len(pixels) != 784 or predicted or actual is not a
// digit 0–9. The returned slice is newly allocated and owned by the caller.
// DigitPNG is safe for concurrent use.
func DigitPNG(pixels []byte, predicted, actual int) ([]byte, error) {
	if len(pixels) != pixLen {
		return nil, fmt.Errorf("render: digit image has %d bytes, want %d (28×28)", len(pixels), pixLen)
	}
	if predicted < 0 || predicted > 9 {
		return nil, fmt.Errorf("render: predicted digit %d is not in 0–9", predicted)
	}
	if actual < 0 || actual > 9 {
		return nil, fmt.Errorf("render: actual digit %d is not in 0–9", actual)
	}

	e := encoders.Get().(*encoder)
	defer encoders.Put(e)

	e.paint(pixels, captionMask(predicted, actual))
	return e.encode()
}

// encoder holds the reusable buffers of one rendering: the canvas, the
// filtered scanlines' compressor and its output.
type encoder struct {
	img  *image.RGBA
	row  []byte // one filtered scanline
	zbuf bytes.Buffer
	zw   *zlib.Writer
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{
		img: image.NewRGBA(image.Rect(0, 0, Size, Size)),
		row: make([]byte, rowLen),
	}
	e.zbuf.Grow(16 << 10)
	e.zw, _ = zlib.NewWriterLevel(&e.zbuf, zlib.BestSpeed) // the level is valid: no error
	return e
}}

// paint draws the whole picture onto e.img.
func (e *encoder) paint(pixels []byte, text *image.Alpha) {
	pix := e.img.Pix
	// White background: fill one row, then double the filled part.
	for i := range stride {
		pix[i] = paper
	}
	for n := stride; n < len(pix); n *= 2 {
		copy(pix[n:], pix[:n])
	}

	// Caption: blend dark ink over white by the (anti-aliased) glyph coverage.
	for y := 0; y < textH; y++ {
		src := text.Pix[y*text.Stride : y*text.Stride+textW]
		dst := pix[(textY+y)*stride+textX*4:]
		for x, a := range src {
			if a == 0 {
				continue
			}
			v := byte((paper*(255-int(a)) + ink*int(a) + 127) / 255)
			d := dst[x*4 : x*4+4 : x*4+4]
			d[0], d[1], d[2] = v, v, v
		}
	}

	// Digit: each source pixel becomes a scale×scale block of grey (v, v, v).
	// Build one magnified row, then copy it scale times.
	for sy := 0; sy < DigitSide; sy++ {
		first := (digitY+sy*scale)*stride + digitX*4
		line := pix[first : first+digitW*4 : first+digitW*4]
		for sx, v := range pixels[sy*DigitSide : (sy+1)*DigitSide] {
			block := line[sx*scale*4 : (sx+1)*scale*4]
			for i := 0; i < len(block); i += 4 {
				block[i], block[i+1], block[i+2], block[i+3] = v, v, v, 0xff
			}
		}
		for k := 1; k < scale; k++ {
			copy(pix[first+k*stride:], line)
		}
	}
}

// encode writes e.img as a PNG of colour type 6 (8-bit RGBA, like the old
// service's files; image/png would write an opaque image as RGB). Every
// scanline after the first uses the "Up" filter, which turns the many repeated
// rows of this picture into zeros that compress to almost nothing.
func (e *encoder) encode() ([]byte, error) {
	e.zbuf.Reset()
	e.zw.Reset(&e.zbuf)
	pix := e.img.Pix
	for y := 0; y < Size; y++ {
		cur := pix[y*stride : (y+1)*stride]
		if y == 0 {
			e.row[0] = 0 // None
			copy(e.row[1:], cur)
		} else {
			e.row[0] = 2 // Up
			prev := pix[(y-1)*stride : y*stride]
			out := e.row[1:]
			if bytes.Equal(cur, prev) { // most rows: margins, repeated digit rows
				clear(out)
			} else {
				for i := range cur {
					out[i] = cur[i] - prev[i]
				}
			}
		}
		if _, err := e.zw.Write(e.row); err != nil {
			return nil, fmt.Errorf("render: compressing PNG data: %w", err)
		}
	}
	if err := e.zw.Close(); err != nil {
		return nil, fmt.Errorf("render: compressing PNG data: %w", err)
	}

	idat := e.zbuf.Bytes()
	const overhead = 8 + (12 + 13) + 12 + 12 // signature, IHDR, IDAT framing, IEND
	out := make([]byte, 0, overhead+len(idat))
	out = append(out, "\x89PNG\r\n\x1a\n"...)
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], Size)
	binary.BigEndian.PutUint32(ihdr[4:], Size)
	ihdr[8] = 8  // bit depth
	ihdr[9] = 6  // colour type: truecolour with alpha
	ihdr[10] = 0 // compression: deflate
	ihdr[11] = 0 // filter method: adaptive
	ihdr[12] = 0 // no interlace
	out = appendChunk(out, "IHDR", ihdr[:])
	out = appendChunk(out, "IDAT", idat)
	out = appendChunk(out, "IEND", nil)
	return out, nil
}

// appendChunk appends one PNG chunk: length, type, data, CRC of type+data.
func appendChunk(b []byte, typ string, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	start := len(b)
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// Captions are drawn once per (predicted, actual) pair and kept: 100 masks of
// 252×20 bytes at most.
var captions [10][10]struct {
	once sync.Once
	mask *image.Alpha
}

// captionMask returns the coverage mask (textW×textH) of the caption for the
// pair: basicfont's 7×13 bitmap font, enlarged 1.5× with bilinear filtering so
// the text is legible without the uneven strokes of a fractional
// nearest-neighbour scale. (A 2× scale would be 336 px wide: too wide.)
func captionMask(predicted, actual int) *image.Alpha {
	c := &captions[predicted][actual]
	c.once.Do(func() {
		text := []byte(caption)
		text[len("Predicted: ")] = byte('0' + predicted)
		text[len(text)-1] = byte('0' + actual)

		face := basicfont.Face7x13
		small := image.NewAlpha(image.Rect(0, 0, captionLen*face.Advance, face.Height))
		d := font.Drawer{Dst: small, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
		d.DrawString(string(text))

		// 168×13 → 252×20: 1.5× across, 20/13 ≈ 1.54× down (13 × 1.5 rounded up).
		c.mask = image.NewAlpha(image.Rect(0, 0, textW, textH))
		xdraw.ApproxBiLinear.Scale(c.mask, c.mask.Bounds(), small, small.Bounds(), draw.Src, nil)
	})
	return c.mask
}
