package digit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image/jpeg"
	"image/png"
	"io"
)

// Bounds on what an image may cost to decode, checked by Inspect on the
// image's structure before anything is decoded. An image beyond one is
// refused with ErrTooCostly (or, for MaxImageBytes and MaxImageSide,
// ErrTooLarge).
const (
	// MaxCostlyPixels is the most pixels (width × height) an image of a
	// costly kind may have: a progressive JPEG, a 16-bit PNG or an
	// interlaced PNG. Other images may have MaxImageSide × MaxImageSide.
	//
	// 2,097,152 is 2048 × 1024 (about 1448 × 1448): far more than a digit
	// needs (MNIST's are 28 × 28 and Preprocess scales every digit to 20
	// pixels). Per pixel, these kinds cost three to four times what an
	// ordinary image does (see Inspect): a progressive JPEG keeps 64 int32
	// coefficients for every 8 × 8 block of each colour component (4 bytes
	// a pixel a component) as well as the image, so 16 bytes a pixel in
	// 4:4:4 colour and 20 for an RGB one; a 16-bit PNG takes 8 bytes a
	// pixel, and an interlaced one decodes each of its 7 passes into an
	// image of its own before copying it into the whole (twice the image),
	// 17 bytes a pixel for a 16-bit interlaced RGBA one. At 4096 × 4096
	// that is 270–340 MB; at this bound 34–42 MB. A progressive JPEG also
	// costs a pass over its blocks per scan: at this bound and
	// MaxProgressiveScans, at most 33 passes over 2 million pixels (see
	// Cost.Work), some 50 ms.
	MaxCostlyPixels = 1 << 21

	// MaxProgressiveScans is the most scans a progressive JPEG may have.
	// The decoder visits every block of a scan's components once per scan,
	// whatever the scan holds: a scan of 24 bytes can mark all the blocks
	// of a 4096 × 4096 component as empty, so 64 KB of scans made a
	// decoder work for 18 s. Real encoders emit far fewer: libjpeg's
	// default script (jpeg_simple_progression, used by cjpeg and jpegtran
	// -progressive, ImageMagick, GIMP) has 10 scans for YCbCr colour, 6 for
	// grey and 14 for RGB; jpegli's default has 13 to 15; mozjpeg's scan
	// optimisation emits at most 16 (its worst case: 3 DC scans, 2 luma
	// bands and 3 luma refinements, 4 chroma bands and 4 chroma
	// refinements). 24 leaves room for hand-made scripts (jpegtran -scans).
	// A sequential (baseline or extended) JPEG codes each colour component
	// in one scan, as T.81 has it; one coding a component twice is refused.
	MaxProgressiveScans = 24

	// MaxJPEGComponents is the most colour components a JPEG may have: 1
	// (grey) or 3 (YCbCr or RGB). A 4-component JPEG (CMYK or YCCK, from
	// print workflows) is refused: the decoder builds a fourth full-size
	// plane and then a CMYK copy of the whole image (5 more bytes a pixel),
	// and a progressive one of a few hundred bytes declaring 4096 × 4096
	// makes it allocate 330 to 400 MB.
	MaxJPEGComponents = 3

	// MaxDecodeBytes is the most memory Inspect may estimate (Cost.Bytes)
	// for an image it accepts: a larger estimate is refused with
	// ErrTooCostly. The costliest ordinary image, an 8-bit RGBA PNG of
	// 4096 × 4096, needs 84.5 MB (4 bytes a pixel decoded, 1 for
	// Preprocess's ink plane, and 0.6 MB of rows and buffers); within the
	// other bounds, only an RGB (not YCbCr) JPEG of more than about 12
	// million pixels (8 bytes a pixel) needs more. A memory budget for
	// decoding must hold at least this much to admit every image.
	MaxDecodeBytes = 96 << 20
)

// Fixed costs, in bytes, of decoding one image besides its pixels, rounded
// up from what the decoders allocate (measured, and read from their
// source): the decoder's state (image/jpeg's is 14 KB: a 4 KB input buffer
// and its Huffman and quantisation tables); zlib's 32 KB window, a 4 KB
// read buffer, its state, and the link tables of the current block's
// Huffman codes, up to 143 (each 9-bit prefix of codes longer than 9 bits
// holds two codes at least, of 286 at most) of 64 entries: 40 KB; LZW's
// 20 KB of tables, a 4 KB read buffer and the palettes; Preprocess's fixed
// buffers and its 784 outputs.
const (
	jpegOverhead       = 32 << 10
	pngOverhead        = 128 << 10
	gifOverhead        = 64 << 10
	preprocessOverhead = 16 << 10
)

// Cost is what decoding an image and preprocessing it (FromImage) will
// cost, as Inspect estimates it from the image's structure.
type Cost struct {
	// Format is "PNG", "JPEG" or "GIF".
	Format string
	// Width and Height are the image's size, in pixels, as its header has
	// it (for a GIF, its logical screen's).
	Width, Height int
	// Bytes is an upper bound of the peak FromImage adds to the live heap
	// for this image: what the decoder allocates (the decoded image, and
	// the decoder's work buffers) plus what Preprocess allocates. It does
	// not count data itself. It bounds what FromImage allocates in all,
	// too, but for one thing: the zlib decoder under image/png allocates
	// new Huffman tables (up to 40 KB) for each compressed block,
	// garbage once the next block begins. Encoders make a block per tens
	// of kilobytes; a crafted PNG of 1 MiB made of 20,000 empty blocks
	// makes it allocate 725 MB in all, never more than the estimate at
	// once.
	Bytes int64
	// Work estimates the CPU work, in pixel-passes: how many pixel (or
	// sample) values the decoder and Preprocess produce or read, summed
	// over their passes (one is 2 to 6 ns). Decoding and preprocessing an
	// ordinary image costs about 5 times its pixel count; each scan of a
	// progressive JPEG adds a pass; each byte of a PNG counts 128, for
	// the blocks a crafted zlib stream can make the decoder build tables
	// for (the 1 MiB PNG above costs 0.55 s, 100 pixel-passes a byte).
	Work int64
}

// Inspect reads an image's structure — a JPEG's markers and scans, a PNG's
// chunks up to its pixel data, a GIF's blocks up to its first frame —
// without decoding any pixel, and returns what FromImage would cost, or
// refuses the image. It is cheap (a pass over data's bytes at most; nothing
// the image's size is allocated) and safe for any bytes. Errors are of kind
// ErrEmpty, ErrTooLarge, ErrFormat, ErrCorrupt (structure the decoder would
// refuse too: truncated or invalid headers, unsupported JPEG modes such as
// lossless or arithmetic coding) or ErrTooCostly (the bounds above). An
// image Inspect accepts may still turn out to be corrupt when decoded.
//
// Bytes is the sum of these terms (W × H is the image's size; all products
// in bytes):
//
//	preprocessing (every format): W·H (the ink plane) + 16·W + 96·H (row
//	  buffers, the resampler's taps and its 20-column intermediate) + 16 KiB
//
//	JPEG: the image, 64 bytes per 8×8 block of each component: with
//	  mxx = ⌈W / (8·H0)⌉ and myy = ⌈H / (8·V0)⌉ MCUs (H0, V0 the luma
//	  sampling factors; 1, 1 for grey), component i has mxx·myy·Hi·Vi
//	  blocks: 1 byte a pixel for grey, 3 for 4:4:4, 1.5 for 4:2:0, padded to
//	  whole MCUs;
//	  + if progressive, 256 bytes (64 int32 coefficients) per block of each
//	  component some scan codes: 4 bytes a pixel a component;
//	  + if RGB rather than YCbCr (no JFIF marker, and an Adobe marker with
//	  transform 0 or components named R, G, B), an RGBA copy, 4·W·H;
//	  + 32 KiB of decoder state.
//
//	PNG: the image, b·W·H, where b is 1 for grey (up to 8 bits) and
//	  palette images, 4 for 8-bit grey with alpha, RGB and RGBA (and for
//	  grey of up to 8 bits with a tRNS chunk, decoded as NRGBA), 2 for
//	  16-bit grey, 8 for other 16-bit images (and 16-bit grey with tRNS);
//	  + two rows of filtered bytes, 2·(1 + ⌈bits a pixel · W / 8⌉);
//	  + if interlaced, each of the 7 passes decoded into an image of its own
//	  (their pixels add up to W·H: b·W·H more) with two rows each;
//	  + 128 KiB of zlib state.
//
//	GIF: the first frame, 1 byte a pixel of the frame (Fw × Fh, within the
//	  screen); + as much again if interlaced (the rows are copied into
//	  order); + 64 KiB of LZW state and palettes. Preprocessing is of the
//	  frame.
//
// Work is, in pixel-passes: for a JPEG, 64 per block each scan covers, plus
// 64 per block for a progressive JPEG's final inverse DCT, plus W·H to
// convert RGB; for a PNG, W·H, twice if interlaced, plus 128 per byte of
// data; for a GIF, Fw·Fh, twice if interlaced; plus 4 passes of
// preprocessing (reading the pixels into the ink plane, cropping,
// resampling, and reading them once more if the background is
// transparent).
func Inspect(data []byte) (Cost, error) {
	if len(data) == 0 {
		return Cost{}, errorf(ErrEmpty, "image is empty")
	}
	if len(data) > MaxImageBytes {
		return Cost{}, errorf(ErrTooLarge, "image is %d bytes, more than %d (1 MiB)", len(data), MaxImageBytes)
	}
	f := formatOf(data)
	if f == nil {
		return Cost{}, errorf(ErrFormat, "not a PNG, JPEG or GIF image")
	}
	c, err := f.inspect(data)
	if err != nil {
		return Cost{}, err
	}
	c.Format = f.name
	if c.Bytes > MaxDecodeBytes {
		return Cost{}, errorf(ErrTooCostly, "image (a %s of %d×%d pixels) would need %d bytes of memory to decode, more than %d (96 MiB)",
			c.Format, c.Width, c.Height, c.Bytes, MaxDecodeBytes)
	}
	return c, nil
}

// preprocessBytes bounds what Preprocess allocates for a w×h image: the ink
// plane; 2 rows of luminance and alpha in background and 2 in inkPlane, the
// strongest ink of each row and column (5·w + h); the resampler's taps,
// 8·(w + 21) and 8·(h + 21) bytes for at most 20 outputs, its intermediate,
// 20 float32 per cropped row (80·h), and its 20×20 output; the 784
// outputs; rounded up.
func preprocessBytes(w, h int64) int64 {
	return w*h + 16*w + 96*h + preprocessOverhead
}

// preprocessWork is Preprocess's passes over a w×h image.
func preprocessWork(w, h int64) int64 { return 4 * w * h }

// errTruncated is the error for a header cut short.
func errTruncated(name string) *Error { return decodeError(name, io.ErrUnexpectedEOF) }

// costly refuses an image of a costly kind ("a progressive JPEG") with more
// than MaxCostlyPixels.
func costly(kind string, w, h int) error {
	if w*h <= MaxCostlyPixels {
		return nil
	}
	return errorf(ErrTooCostly, "image is %s of %d×%d pixels, more than the %d (2048×1024) allowed for %s",
		kind, w, h, MaxCostlyPixels, kind)
}

// JPEG markers (T.81, table B.1).
const (
	jpegSOF0 = 0xc0 // baseline sequential
	jpegSOF1 = 0xc1 // extended sequential, Huffman
	jpegSOF2 = 0xc2 // progressive, Huffman
	jpegDHT  = 0xc4
	jpegRST0 = 0xd0
	jpegRST7 = 0xd7
	jpegEOI  = 0xd9
	jpegSOS  = 0xda
	jpegDQT  = 0xdb
	jpegDRI  = 0xdd
	jpegAPP0 = 0xe0
	jpegAPPE = 0xee // Adobe
	jpegAPPF = 0xef
	jpegCOM  = 0xfe
)

// jpegFrame is what inspectJPEG learns of a JPEG.
type jpegFrame struct {
	w, h        int
	n           int // components: 1 or 3
	comp        [MaxJPEGComponents]struct{ id, h, v int }
	progressive bool
	jfif        bool // the last APP0 is JFIF's, as image/jpeg has it
	adobe       bool // an APP14 Adobe marker was seen
	transform   byte // its colour transform
	scans       int
	coded       [MaxJPEGComponents]bool // coded by some scan
	scanBlocks  int64                   // the blocks the scans cover, summed
}

// blocks returns the number of 8×8 blocks of component i, as image/jpeg
// lays them out: whole MCUs.
func (f *jpegFrame) blocks(i int) int64 {
	h0, v0 := f.comp[0].h, f.comp[0].v
	mxx := (f.w + 8*h0 - 1) / (8 * h0)
	myy := (f.h + 8*v0 - 1) / (8 * v0)
	return int64(mxx) * int64(myy) * int64(f.comp[i].h*f.comp[i].v)
}

// inspectJPEG walks a JPEG's segments the way image/jpeg reads them: bytes
// between segments that are not a marker are skipped, as are fill bytes
// (0xff) before a marker and restart markers; a segment with a length is
// skipped by it; a scan's entropy-coded data runs to the first 0xff that is
// neither stuffing (0xff00) nor a restart marker. The decoder can read no
// scan this walk does not count: it stops decoding a scan at the first such
// marker at the latest.
func inspectJPEG(data []byte) (Cost, error) {
	const name = "JPEG"
	var f jpegFrame
	sof := false
	pos := 2 // after SOI
	for {
		i := bytes.IndexByte(data[pos:], 0xff)
		if i < 0 || pos+i+1 >= len(data) {
			return Cost{}, errTruncated(name)
		}
		pos += i
		marker := data[pos+1]
		pos += 2
		if marker == 0 { // 0xff00 outside a scan: extraneous, as for image/jpeg
			continue
		}
		for marker == 0xff { // fill bytes
			if pos >= len(data) {
				return Cost{}, errTruncated(name)
			}
			marker = data[pos]
			pos++
		}
		if marker == jpegEOI {
			break
		}
		if jpegRST0 <= marker && marker <= jpegRST7 {
			continue
		}
		if pos+2 > len(data) {
			return Cost{}, errTruncated(name)
		}
		n := int(binary.BigEndian.Uint16(data[pos:])) - 2
		pos += 2
		if n < 0 {
			return Cost{}, decodeError(name, jpeg.FormatError("short segment length"))
		}
		if err := jpegMarkerSupported(marker); err != nil {
			return Cost{}, err
		}
		if pos+n > len(data) {
			return Cost{}, errTruncated(name)
		}
		seg := data[pos : pos+n]
		pos += n
		var err error
		switch marker {
		case jpegSOF0, jpegSOF1, jpegSOF2:
			if sof {
				return Cost{}, decodeError(name, jpeg.FormatError("multiple SOF markers"))
			}
			sof = true
			err = f.readSOF(marker, seg)
		case jpegSOS:
			if !sof {
				return Cost{}, decodeError(name, jpeg.FormatError("missing SOF marker"))
			}
			if err = f.readSOS(seg); err == nil {
				pos, err = skipEntropyCoded(data, pos)
			}
		case jpegAPP0:
			if n >= 5 {
				f.jfif = string(seg[:5]) == "JFIF\x00"
			}
		case jpegAPPE:
			if n >= 12 && string(seg[:5]) == "Adobe" {
				f.adobe, f.transform = true, seg[11]
			}
		}
		if err != nil {
			return Cost{}, err
		}
	}
	if f.scans == 0 {
		return Cost{}, decodeError(name, jpeg.FormatError("missing SOS marker"))
	}
	return f.cost(), nil
}

// jpegMarkerSupported refuses the markers image/jpeg does not read, in
// words a user understands for the modes it does not support.
func jpegMarkerSupported(m byte) error {
	switch {
	case m == jpegSOF0 || m == jpegSOF1 || m == jpegSOF2 || m == jpegDHT || m == jpegDQT || m == jpegSOS ||
		m == jpegDRI || jpegAPP0 <= m && m <= jpegAPPF || m == jpegCOM:
		return nil
	case m == 0xc3 || m == 0xc7 || m == 0xcb || m == 0xcf:
		return decodeError("JPEG", jpeg.UnsupportedError(fmt.Sprintf("lossless coding (SOF%d); only baseline, extended and progressive JPEGs are", m-0xc0)))
	case m == 0xc5 || m == 0xc6:
		return decodeError("JPEG", jpeg.UnsupportedError(fmt.Sprintf("hierarchical coding (SOF%d); only baseline, extended and progressive JPEGs are", m-0xc0)))
	case 0xc9 <= m && m <= 0xce: // 0xcc defines arithmetic coding's conditioning
		return decodeError("JPEG", jpeg.UnsupportedError("arithmetic coding; only Huffman-coded JPEGs are"))
	case m < 0xc0:
		return decodeError("JPEG", jpeg.FormatError("unknown marker"))
	default:
		return decodeError("JPEG", jpeg.UnsupportedError("unknown marker"))
	}
}

// readSOF reads a start of frame, checking it as image/jpeg does (so that
// the layout blocks assumes is the one it builds) and against the bounds.
func (f *jpegFrame) readSOF(marker byte, seg []byte) error {
	const name = "JPEG"
	if len(seg) < 6 {
		return decodeError(name, jpeg.UnsupportedError("number of components"))
	}
	if seg[0] != 8 {
		return decodeError(name, jpeg.UnsupportedError("precision"))
	}
	f.h = int(binary.BigEndian.Uint16(seg[1:]))
	f.w = int(binary.BigEndian.Uint16(seg[3:]))
	if err := checkSize(f.w, f.h); err != nil {
		return err
	}
	nf := int(seg[5])
	if nf > MaxJPEGComponents {
		return errorf(ErrTooCostly, "image is a JPEG of %d colour components (CMYK or YCCK): more than %d colour components are not supported",
			nf, MaxJPEGComponents)
	}
	if nf != 1 && nf != 3 || len(seg) != 6+3*nf {
		if len(seg) != 6+3*1 && len(seg) != 6+3*3 {
			return decodeError(name, jpeg.UnsupportedError("number of components"))
		}
		return decodeError(name, jpeg.FormatError("SOF has wrong length"))
	}
	f.n = nf
	for i := range nf {
		c := &f.comp[i]
		c.id = int(seg[6+3*i])
		for j := range i {
			if f.comp[j].id == c.id {
				return decodeError(name, jpeg.FormatError("repeated component identifier"))
			}
		}
		if seg[8+3*i] > 3 {
			return decodeError(name, jpeg.FormatError("bad Tq value"))
		}
		hv := seg[7+3*i]
		c.h, c.v = int(hv>>4), int(hv&0x0f)
		if c.h < 1 || 4 < c.h || c.v < 1 || 4 < c.v {
			return decodeError(name, jpeg.FormatError("luma/chroma subsampling ratio"))
		}
		bad := c.h == 3 || c.v == 3
		if nf == 1 {
			c.h, c.v = 1, 1 // one component is never interleaved: its MCU is one block
		} else {
			switch i {
			case 0:
				bad = bad || c.v == 4
			case 1:
				bad = bad || f.comp[0].h%c.h != 0 || f.comp[0].v%c.v != 0
			case 2:
				bad = bad || c.h != f.comp[1].h || c.v != f.comp[1].v
			}
		}
		if bad {
			return decodeError(name, jpeg.UnsupportedError("luma/chroma subsampling ratio"))
		}
	}
	f.progressive = marker == jpegSOF2
	if f.progressive {
		return costly("a progressive JPEG", f.w, f.h)
	}
	return nil
}

// readSOS reads a scan's header, counts the scan and the blocks it covers.
func (f *jpegFrame) readSOS(seg []byte) error {
	const name = "JPEG"
	n := len(seg)
	if n < 6 || 4+2*f.n < n || n%2 != 0 {
		return decodeError(name, jpeg.FormatError("SOS has wrong length"))
	}
	ns := int(seg[0])
	if n != 4+2*ns {
		return decodeError(name, jpeg.FormatError("SOS length inconsistent with number of components"))
	}
	var in [MaxJPEGComponents]bool
	var blocks int64
	for k := range ns {
		ci := -1
		for i := range f.n {
			if int(seg[1+2*k]) == f.comp[i].id {
				ci = i
			}
		}
		if ci < 0 {
			return decodeError(name, jpeg.FormatError("unknown component selector"))
		}
		if in[ci] {
			return decodeError(name, jpeg.FormatError("repeated component selector"))
		}
		in[ci] = true
		if !f.progressive && f.coded[ci] {
			return errorf(ErrTooCostly, "image is a sequential JPEG that codes colour component %d in more than one scan: each must be coded once",
				ci+1)
		}
		f.coded[ci] = true
		blocks += f.blocks(ci)
	}
	f.scans++
	f.scanBlocks += blocks
	if f.progressive && f.scans > MaxProgressiveScans {
		return errorf(ErrTooCostly, "image is a progressive JPEG of more than %d scans, the most allowed (encoders use at most 16)",
			MaxProgressiveScans)
	}
	return nil
}

// skipEntropyCoded returns the position of the marker that ends the
// entropy-coded data starting at pos.
func skipEntropyCoded(data []byte, pos int) (int, error) {
	for {
		i := bytes.IndexByte(data[pos:], 0xff)
		if i < 0 || pos+i+1 >= len(data) {
			return 0, errTruncated("JPEG")
		}
		pos += i
		if b := data[pos+1]; b == 0 || jpegRST0 <= b && b <= jpegRST7 {
			pos += 2
			continue
		}
		return pos, nil
	}
}

// isRGB tells whether image/jpeg converts the image to RGBA: a 3-component
// JPEG with no JFIF marker whose Adobe marker says its transform is
// "unknown" (0), or whose components are named R, G and B.
func (f *jpegFrame) isRGB() bool {
	if f.n != 3 || f.jfif {
		return false
	}
	if f.adobe && f.transform == 0 {
		return true
	}
	return f.comp[0].id == 'R' && f.comp[1].id == 'G' && f.comp[2].id == 'B'
}

func (f *jpegFrame) cost() Cost {
	w, h := int64(f.w), int64(f.h)
	var planes, coded int64
	for i := range f.n {
		planes += f.blocks(i)
		if f.coded[i] {
			coded += f.blocks(i)
		}
	}
	c := Cost{Width: f.w, Height: f.h,
		Bytes: 64*planes + preprocessBytes(w, h) + jpegOverhead,
		Work:  64*f.scanBlocks + preprocessWork(w, h),
	}
	if f.progressive {
		c.Bytes += 256 * coded
		c.Work += 64 * coded
	}
	if f.isRGB() {
		c.Bytes += 4 * w * h
		c.Work += w * h
	}
	return c
}

// pngWorkPerByte is the work, in pixel-passes, a byte of a PNG may cost
// beyond its pixels: a dynamic Huffman block of deflate can be some 50
// bytes long, hold nothing, and make the zlib decoder build some 130 link
// tables of 64 entries; measured, 550 ns a byte where decoding a pixel of
// RGBA takes 5.5.
const pngWorkPerByte = 128

// PNG colour types.
const (
	pngGrey      = 0
	pngRGB       = 2
	pngPalette   = 3
	pngGreyAlpha = 4
	pngRGBA      = 6
)

// inspectPNG reads a PNG's IHDR, checked as image/png does, and its chunks
// up to the first IDAT, for a tRNS chunk (which makes a grey image decode
// as NRGBA). The number and length of IDAT chunks do not matter: the
// decoder inflates exactly the rows the header implies, into the image it
// allocates at the first IDAT. If the chunks before it cannot be read to
// the end, the decoder will fail on them, but the estimate assumes a tRNS
// chunk all the same.
func inspectPNG(data []byte) (Cost, error) {
	const name = "PNG"
	pos := len(pngSignature)
	var ihdr []byte
	for ihdr == nil { // image/png skips unknown chunks before IHDR
		if pos+8 > len(data) {
			return Cost{}, errTruncated(name)
		}
		length := binary.BigEndian.Uint32(data[pos:])
		typ := string(data[pos+4 : pos+8])
		switch typ {
		case "IHDR":
			if length != 13 {
				return Cost{}, decodeError(name, png.FormatError("bad IHDR length"))
			}
			if pos+8+13+4 > len(data) {
				return Cost{}, errTruncated(name)
			}
			ihdr = data[pos+8 : pos+8+13]
			if crc32.ChecksumIEEE(data[pos+4:pos+8+13]) != binary.BigEndian.Uint32(data[pos+8+13:]) {
				return Cost{}, decodeError(name, png.FormatError("invalid checksum"))
			}
		case "PLTE", "tRNS", "IDAT", "IEND":
			return Cost{}, decodeError(name, png.FormatError("chunk out of order"))
		}
		if uint64(pos)+12+uint64(length) > uint64(len(data)) {
			return Cost{}, errTruncated(name)
		}
		pos += 12 + int(length)
	}
	depth, ct, interlaced := int(ihdr[8]), int(ihdr[9]), ihdr[12]
	if ihdr[10] != 0 {
		return Cost{}, decodeError(name, png.UnsupportedError("compression method"))
	}
	if ihdr[11] != 0 {
		return Cost{}, decodeError(name, png.UnsupportedError("filter method"))
	}
	if interlaced > 1 {
		return Cost{}, decodeError(name, png.FormatError("invalid interlace method"))
	}
	w32, h32 := int32(binary.BigEndian.Uint32(ihdr[0:])), int32(binary.BigEndian.Uint32(ihdr[4:]))
	if w32 <= 0 || h32 <= 0 {
		return Cost{}, decodeError(name, png.FormatError("non-positive dimension"))
	}
	// Samples a pixel; and the bytes a pixel of the decoded image, without
	// and with a tRNS chunk.
	var samples, b, bTRNS int
	switch {
	case ct == pngGrey && (depth == 1 || depth == 2 || depth == 4 || depth == 8):
		samples, b, bTRNS = 1, 1, 4 // Gray, or NRGBA
	case ct == pngGrey && depth == 16:
		samples, b, bTRNS = 1, 2, 8 // Gray16, or NRGBA64
	case ct == pngPalette && (depth == 1 || depth == 2 || depth == 4 || depth == 8):
		samples, b, bTRNS = 1, 1, 1 // Paletted
	case (ct == pngRGB || ct == pngGreyAlpha || ct == pngRGBA) && (depth == 8 || depth == 16):
		samples = map[int]int{pngRGB: 3, pngGreyAlpha: 2, pngRGBA: 4}[ct]
		b = 4 * depth / 8 // RGBA or NRGBA; RGBA64 or NRGBA64
		bTRNS = b
	default:
		return Cost{}, decodeError(name, png.UnsupportedError(fmt.Sprintf("bit depth %d, color type %d", depth, ct)))
	}
	wi, hi := int(w32), int(h32)
	if err := checkSize(wi, hi); err != nil {
		return Cost{}, err
	}
	switch {
	case depth == 16 && interlaced == 1:
		if err := costly("a 16-bit interlaced PNG", wi, hi); err != nil {
			return Cost{}, err
		}
	case depth == 16:
		if err := costly("a 16-bit PNG", wi, hi); err != nil {
			return Cost{}, err
		}
	case interlaced == 1:
		if err := costly("an interlaced PNG", wi, hi); err != nil {
			return Cost{}, err
		}
	}
	if pngHasTRNS(data[pos:]) {
		b = bTRNS
	}

	w, h := int64(wi), int64(hi)
	bits := int64(samples * depth)
	rows := func(w int64) int64 { return 2 * (1 + (bits*w+7)/8) }
	c := Cost{Width: wi, Height: hi,
		Bytes: int64(b)*w*h + preprocessBytes(w, h) + pngOverhead,
		Work:  w*h + preprocessWork(w, h) + pngWorkPerByte*int64(len(data)),
	}
	if interlaced == 0 {
		c.Bytes += rows(w)
		return c, nil
	}
	c.Bytes += int64(b) * w * h // the passes
	c.Work += w * h
	for _, p := range adam7 {
		pw := (w - p.x0 + p.dx - 1) / p.dx
		ph := (h - p.y0 + p.dy - 1) / p.dy
		if pw > 0 && ph > 0 {
			c.Bytes += rows(pw)
		}
	}
	return c, nil
}

// adam7 is PNG's interlacing: 7 passes, each of every dx-th pixel from x0
// of every dy-th row from y0.
var adam7 = [7]struct{ dx, dy, x0, y0 int64 }{
	{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1},
}

// pngHasTRNS tells whether the chunks from the one after IHDR up to the
// first IDAT may include a tRNS chunk: true if one does, or if they cannot
// be read to an IDAT.
func pngHasTRNS(chunks []byte) bool {
	for pos := 0; ; {
		if pos+8 > len(chunks) {
			return true
		}
		length := binary.BigEndian.Uint32(chunks[pos:])
		switch string(chunks[pos+4 : pos+8]) {
		case "tRNS":
			return true
		case "IDAT":
			return false
		}
		if uint64(pos)+12+uint64(length) > uint64(len(chunks)) {
			return true
		}
		pos += 12 + int(length)
	}
}

// inspectGIF reads a GIF's header and logical screen, and its blocks up to
// the first frame's descriptor, the way image/gif does (which decodes that
// frame only). If the walk does not reach a descriptor whose frame is
// within the screen, the decoder will fail before allocating the frame;
// the estimate is then that of an interlaced frame the size of the screen.
func inspectGIF(data []byte) (Cost, error) {
	const name = "GIF"
	if len(data) < 13 {
		return Cost{}, errTruncated(name)
	}
	if v := string(data[:6]); v != "GIF87a" && v != "GIF89a" {
		return Cost{}, decodeError(name, fmt.Errorf("gif: can't recognize format %q", v))
	}
	sw := int(binary.LittleEndian.Uint16(data[6:]))
	sh := int(binary.LittleEndian.Uint16(data[8:]))
	if err := checkSize(sw, sh); err != nil {
		return Cost{}, err
	}
	fw, fh, interlaced := sw, sh, true
	if x, y, w, h, il, ok := gifFirstFrame(data); ok && x+w <= sw && y+h <= sh {
		fw, fh, interlaced = w, h, il
	}
	w, h := int64(fw), int64(fh)
	c := Cost{Width: sw, Height: sh,
		Bytes: w*h + preprocessBytes(w, h) + gifOverhead,
		Work:  w*h + preprocessWork(w, h),
	}
	if interlaced {
		c.Bytes += w * h
		c.Work += w * h
	}
	return c, nil
}

// gifFirstFrame finds the first image descriptor, skipping the global
// colour table and the extensions before it exactly as image/gif reads
// them; ok is false if there is none or the blocks cannot be read to it
// (image/gif fails on them too).
func gifFirstFrame(data []byte) (x, y, w, h int, interlaced, ok bool) {
	pos := 13
	if fields := data[10]; fields&0x80 != 0 {
		pos += 3 << (1 + fields&7)
	}
	for pos < len(data) {
		switch data[pos] {
		case 0x21: // extension
			if pos+1 >= len(data) {
				return 0, 0, 0, 0, false, false
			}
			label := data[pos+1]
			pos += 2
			switch label {
			case 0xf9: // graphic control: 6 bytes
				if pos+6 > len(data) || data[pos] != 4 || data[pos+5] != 0 {
					return 0, 0, 0, 0, false, false
				}
				pos += 6
				continue
			case 0x01: // plain text: 13 bytes, then sub-blocks
				pos += 13
			case 0xfe: // comment: sub-blocks
			case 0xff: // application: a block, then sub-blocks
				if pos >= len(data) {
					return 0, 0, 0, 0, false, false
				}
				pos += 1 + int(data[pos])
			default:
				return 0, 0, 0, 0, false, false
			}
			for pos < len(data) && data[pos] != 0 {
				pos += 1 + int(data[pos])
			}
			if pos >= len(data) {
				return 0, 0, 0, 0, false, false
			}
			pos++ // the terminator
		case 0x2c: // image descriptor
			if pos+10 > len(data) {
				return 0, 0, 0, 0, false, false
			}
			d := data[pos+1:]
			x, y = int(binary.LittleEndian.Uint16(d[0:])), int(binary.LittleEndian.Uint16(d[2:]))
			w, h = int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			return x, y, w, h, d[8]&0x40 != 0, true
		default: // the trailer, or a block image/gif refuses
			return 0, 0, 0, 0, false, false
		}
	}
	return 0, 0, 0, 0, false, false
}
