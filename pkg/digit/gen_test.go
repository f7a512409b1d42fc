package digit_test

// Writers of test images the standard encoders cannot make: JPEGs of any
// sampling, progressive ones with any scan script (and so scan bombs),
// 4-component ones; PNGs of any bit depth and colour type, interlaced or
// with a tRNS chunk; interlaced GIFs. Their pixels are flat: ink (black) in
// the rectangles a shape gives, white elsewhere, so that they are small
// however large, and quick to make.

import (
	"bytes"
	"compress/lzw"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"math/bits"
	"testing"
)

// shape is where the ink is, in image pixels.
type shape []image.Rectangle

func (s shape) ink(x, y int) bool {
	for _, r := range s {
		if image.Pt(x, y).In(r) {
			return true
		}
	}
	return false
}

// rowKey tells which of the shape's rectangles cross row y: rows of the
// same key are alike, so the writers make each kind of row once.
func (s shape) rowKey(y int) uint64 {
	var k uint64
	for i, r := range s {
		if r.Min.Y <= y && y < r.Max.Y {
			k |= 1 << uint(i)
		}
	}
	return k
}

// cross is a shape whose ink box is the whole w×h image (so Preprocess
// crops nothing and resamples every row: its costliest case) while the
// border stays mostly background: a vertical bar from top to bottom and a
// horizontal one from side to side.
func cross(w, h int) shape {
	return shape{
		image.Rect(w/3, 0, w/3+max(1, w/16), h),
		image.Rect(0, h/2, w, h/2+max(1, h/16)),
	}
}

// A jpegScan is one scan of a JPEG: the components it codes (indexes into
// jpegImage.comps) and, for a progressive JPEG, its spectral selection
// [ss, se] and successive approximation ah, al.
type jpegScan struct {
	comps          []int
	ss, se, ah, al int
}

// A jpegImage is a JPEG to write. Its blocks are flat: component 0 is 0
// where the shape has ink and 255 elsewhere; the others are 128 (neutral
// chroma), or, with rgb, equal to component 0.
type jpegImage struct {
	w, h    int
	sof     byte     // 0xc0 baseline, 0xc1 extended, 0xc2 progressive
	comps   [][3]int // identifier, horizontal and vertical sampling factors
	scans   []jpegScan
	ink     shape
	rgb     bool // all components alike
	jfif    bool // write a JFIF APP0 marker
	adobe   int  // write an Adobe APP14 marker with this transform, if >= 0
	restart int  // restart interval, in MCUs (sequential scans only)
	junk    bool // add segments and bytes the decoder skips
}

// Huffman tables: DC categories 0–11; for AC, EOB and the EOB runs EOB1
// to EOB14. Nothing else is needed for flat blocks.
var (
	dcCounts = [16]int{1, 0, 0, 0, 11}
	dcSyms   = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	acCounts = [16]int{1, 0, 0, 0, 14}
	acSyms   = []byte{0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0}
)

// huffCodes returns the canonical codes of a table: code and length by
// symbol.
func huffCodes(counts [16]int, syms []byte) map[byte][2]int {
	codes := map[byte][2]int{}
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		for range counts[l-1] {
			codes[syms[k]] = [2]int{code, l}
			code++
			k++
		}
		code <<= 1
	}
	return codes
}

// bitWriter writes entropy-coded data, MSB first, stuffing a zero byte
// after every 0xff.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc int
}

func (b *bitWriter) put(v, n int) {
	b.acc = b.acc<<uint(n) | uint64(v)&(1<<uint(n)-1)
	b.nacc += n
	for b.nacc >= 8 {
		c := byte(b.acc >> uint(b.nacc-8))
		b.out = append(b.out, c)
		if c == 0xff {
			b.out = append(b.out, 0)
		}
		b.nacc -= 8
	}
}

// flush pads the last byte with 1 bits.
func (b *bitWriter) flush() {
	if b.nacc > 0 {
		b.put(1<<uint(8-b.nacc)-1, 8-b.nacc)
	}
}

func segment(out []byte, marker byte, payload []byte) []byte {
	out = append(out, 0xff, marker)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(payload)))
	return append(out, payload...)
}

// encode writes the JPEG. Blocks are visited in the order image/jpeg
// decodes them (which for a scan of one component of a subsampled image,
// like its restart intervals, follows the frame's MCUs), so that any scan
// script it accepts comes out as it reads it.
func (j jpegImage) encode() []byte {
	out := []byte{0xff, 0xd8}
	if j.jfif {
		out = segment(out, 0xe0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	}
	if j.adobe >= 0 {
		out = segment(out, 0xee, []byte{'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, byte(j.adobe)})
	}
	if j.junk {
		// A comment holding what looks like markers, extraneous bytes, a
		// stray 0xff00 and fill bytes: the decoder skips them all.
		out = segment(out, 0xfe, []byte{0xff, 0xda, 0xff, 0xd9, 0xff, 0x00})
		out = append(out, 0x12, 0x34, 0xff, 0x00, 0xff, 0xff)
	}
	q := make([]byte, 65) // table 0, all ones
	for i := 1; i < 65; i++ {
		q[i] = 1
	}
	out = segment(out, 0xdb, q)
	sof := []byte{8, byte(j.h >> 8), byte(j.h), byte(j.w >> 8), byte(j.w), byte(len(j.comps))}
	for _, c := range j.comps {
		sof = append(sof, byte(c[0]), byte(c[1]<<4|c[2]), 0)
	}
	out = segment(out, j.sof, sof)
	for class, t := range []struct {
		counts [16]int
		syms   []byte
	}{{dcCounts, dcSyms}, {acCounts, acSyms}} {
		p := []byte{byte(class << 4)}
		for _, n := range t.counts {
			p = append(p, byte(n))
		}
		out = segment(out, 0xc4, append(p, t.syms...))
	}
	if j.restart > 0 {
		out = segment(out, 0xdd, []byte{byte(j.restart >> 8), byte(j.restart)})
	}
	for _, s := range j.scans {
		p := []byte{byte(len(s.comps))}
		for _, c := range s.comps {
			p = append(p, byte(j.comps[c][0]), 0x00)
		}
		p = append(p, byte(s.ss), byte(s.se), byte(s.ah<<4|s.al))
		out = segment(out, 0xda, p)
		out = append(out, j.scanData(s)...)
		if j.junk {
			out = append(out, 0xff, 0xff) // fill bytes before the next marker
		}
	}
	return append(out, 0xff, 0xd9)
}

// scanData codes one scan of flat blocks.
func (j jpegImage) scanData(s jpegScan) []byte {
	dc, ac := huffCodes(dcCounts, dcSyms), huffCodes(acCounts, acSyms)
	var b bitWriter
	sym := func(codes map[byte][2]int, v byte) { c := codes[v]; b.put(c[0], c[1]) }
	var pred [4]int // DC predictions
	eobRun := 0
	flushRun := func() {
		for eobRun > 0 {
			r := min(eobRun, 1<<15-1)
			n := bits.Len(uint(r)) - 1
			sym(ac, byte(n<<4))
			if n > 0 {
				b.put(r-1<<uint(n), n)
			}
			eobRun -= r
		}
	}
	h0, v0 := j.comps[0][1], j.comps[0][2]
	if len(j.comps) == 1 {
		h0, v0 = 1, 1
	}
	mxx, myy := (j.w+8*h0-1)/(8*h0), (j.h+8*v0-1)/(8*v0)
	progressive := j.sof == 0xc2
	if progressive && s.ss > 0 {
		// An AC scan of one component, all blocks empty: only their count
		// matters, those of the component's MCU rows and columns that
		// start within the image, as image/jpeg counts them.
		hi, vi := j.comps[s.comps[0]][1], j.comps[s.comps[0]][2]
		if len(j.comps) == 1 {
			hi, vi = 1, 1
		}
		eobRun = min(mxx*hi, (j.w+7)/8) * min(myy*vi, (j.h+7)/8)
		flushRun()
		b.flush()
		return b.out
	}
	mcu, rst := 0, 0
	blockCount := 0
	for my := range myy {
		for mx := range mxx {
			for _, ci := range s.comps {
				hi, vi := j.comps[ci][1], j.comps[ci][2]
				if len(j.comps) == 1 {
					hi, vi = 1, 1
				}
				for k := range hi * vi {
					var bx, by int
					if len(s.comps) != 1 {
						bx, by = hi*mx+k%hi, vi*my+k/hi
					} else {
						q := mxx * hi
						bx, by = blockCount%q, blockCount/q
						blockCount++
						if bx*8 >= j.w || by*8 >= j.h {
							continue
						}
					}
					dcv := j.dcAt(ci, bx, by, h0, v0, hi, vi)
					switch {
					case progressive && s.ss == 0 && s.ah == 0: // DC, first
						diff := dcv>>uint(s.al) - pred[ci]
						pred[ci] = dcv >> uint(s.al)
						j.putDC(&b, dc, diff)
					case progressive && s.ss == 0: // DC refinement: one bit
						b.put(dcv>>uint(s.al)&1, 1)
					case progressive: // AC, first or refinement: all zero
						eobRun++
						if eobRun == 1<<15-1 {
							flushRun()
						}
					default: // sequential: DC, then end of block
						diff := dcv - pred[ci]
						pred[ci] = dcv
						j.putDC(&b, dc, diff)
						sym(ac, 0x00)
					}
				}
			}
			mcu++
			if j.restart > 0 && !progressive && mcu%j.restart == 0 && mcu < mxx*myy {
				b.flush()
				b.out = append(b.out, 0xff, byte(0xd0+rst%8))
				rst++
				pred = [4]int{}
			}
		}
	}
	flushRun()
	b.flush()
	return b.out
}

// dcAt returns the DC coefficient of block (bx, by) of component ci: 8
// times the level-shifted value, the quantisation being 1.
func (j jpegImage) dcAt(ci, bx, by, h0, v0, hi, vi int) int {
	v := 128
	if ci == 0 || j.rgb {
		x, y := bx*8*h0/hi+4, by*8*v0/vi+4 // the block's centre, in image pixels
		v = 255
		if j.ink.ink(x, y) {
			v = 0
		}
	}
	return 8 * (v - 128)
}

func (j jpegImage) putDC(b *bitWriter, codes map[byte][2]int, diff int) {
	cat := bits.Len(uint(max(diff, -diff)))
	c := codes[byte(cat)]
	b.put(c[0], c[1])
	if cat > 0 {
		v := diff
		if diff < 0 {
			v = diff + 1<<uint(cat) - 1
		}
		b.put(v, cat)
	}
}

// Component layouts: identifiers and sampling factors.
var (
	grey1  = [][3]int{{1, 1, 1}}
	yuv444 = [][3]int{{1, 1, 1}, {2, 1, 1}, {3, 1, 1}}
	yuv420 = [][3]int{{1, 2, 2}, {2, 1, 1}, {3, 1, 1}}
	rgb444 = [][3]int{{'R', 1, 1}, {'G', 1, 1}, {'B', 1, 1}}
	cmyk   = [][3]int{{1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {4, 1, 1}}
)

// baseline returns a baseline JPEG of one interleaved scan.
func baseline(w, h int, comps [][3]int) jpegImage {
	all := make([]int, len(comps))
	for i := range all {
		all[i] = i
	}
	return jpegImage{w: w, h: h, sof: 0xc0, comps: comps, scans: []jpegScan{{comps: all, se: 63}},
		ink: cross(w, h), jfif: true, adobe: -1}
}

// progressive returns a progressive JPEG of n scans: one DC scan of all
// the components, then AC scans, one component each, in turn, over bands
// of the spectrum: what a real script does, as far as the decoder's work
// and memory go.
func progressive(w, h int, comps [][3]int, n int) jpegImage {
	j := baseline(w, h, comps)
	j.sof = 0xc2
	j.scans = j.scans[:1]
	j.scans[0].se = 0
	for k := 1; k < n; k++ {
		ss := 1 + (k-1)/len(comps)%63
		j.scans = append(j.scans, jpegScan{comps: []int{(k - 1) % len(comps)}, ss: ss, se: 63})
	}
	return j
}

// scanBomb is the attack: a progressive JPEG of one grey component and
// many AC scans (and no DC scan), each marking every block empty in a few
// bytes: 41 for 4096×4096 (9 EOB runs, and the zero bytes stuffed after
// the 0xff bytes their extra bits make).
func scanBomb(w, h, scans int) []byte {
	j := progressive(w, h, grey1, scans+1)
	j.scans = j.scans[1:]
	j.ink = nil
	return j.encode()
}

// A pngImage is a PNG to write: grey level 0 where the shape has ink, 255
// (or the largest sample) elsewhere, in the given bit depth and colour
// type; a palette image has black and white.
type pngImage struct {
	w, h       int
	depth, ct  int
	interlaced bool
	trns       bool // a tRNS chunk, making a colour that does not occur transparent
	ink        shape
}

func pngChunk(out []byte, typ string, data []byte) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	start := len(out)
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
}

func (p pngImage) encode(tb testing.TB) []byte {
	tb.Helper()
	out := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(p.w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(p.h))
	il := byte(0)
	if p.interlaced {
		il = 1
	}
	out = pngChunk(out, "IHDR", append(ihdr, byte(p.depth), byte(p.ct), 0, 0, il))
	if p.ct == 3 {
		out = pngChunk(out, "PLTE", []byte{0, 0, 0, 255, 255, 255})
	}
	if p.trns {
		switch p.ct {
		case 0:
			out = pngChunk(out, "tRNS", []byte{0, 1}) // grey level 1: absent
		case 2:
			out = pngChunk(out, "tRNS", []byte{0, 1, 0, 1, 0, 1})
		case 3:
			out = pngChunk(out, "tRNS", []byte{255, 255})
		}
	}
	samples := map[int]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[p.ct]
	var raw bytes.Buffer
	made := map[[4]uint64][]byte{}
	row := func(y, x0, dx, n int) {
		key := [4]uint64{p.ink.rowKey(y), uint64(x0), uint64(dx), uint64(n)}
		if r, ok := made[key]; ok {
			raw.Write(r)
			return
		}
		start := raw.Len()
		defer func() { made[key] = bytes.Clone(raw.Bytes()[start:]) }()
		raw.WriteByte(0) // no filter
		var acc, nacc int
		for i := range n {
			ink := p.ink.ink(x0+i*dx, y)
			for s := range samples {
				v := 1<<uint(p.depth) - 1 // white, opaque
				switch {
				case p.ct == 3 && ink:
					v = 0
				case p.ct == 3:
					v = 1
				case ink && !(s == samples-1 && (p.ct == 4 || p.ct == 6)): // alpha stays opaque
					v = 0
				}
				acc = acc<<uint(p.depth) | v
				nacc += p.depth
				for nacc >= 8 {
					raw.WriteByte(byte(acc >> uint(nacc-8)))
					nacc -= 8
				}
			}
		}
		if nacc > 0 {
			raw.WriteByte(byte(acc << uint(8-nacc)))
		}
	}
	if !p.interlaced {
		for y := range p.h {
			row(y, 0, 1, p.w)
		}
	} else {
		for _, s := range [7][4]int{{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1}} {
			dx, dy, x0, y0 := s[0], s[1], s[2], s[3]
			n := (p.w - x0 + dx - 1) / dx
			if n <= 0 {
				continue
			}
			for y := y0; y < p.h; y += dy {
				row(y, x0, dx, n)
			}
		}
	}
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	out = pngChunk(out, "IDAT", z.Bytes())
	return pngChunk(out, "IEND", nil)
}

// gifImage writes a GIF of one w×h frame, black ink on white, interlaced
// or not.
func gifImage(tb testing.TB, w, h int, ink shape, interlaced bool) []byte {
	tb.Helper()
	out := []byte("GIF89a")
	out = binary.LittleEndian.AppendUint16(out, uint16(w))
	out = binary.LittleEndian.AppendUint16(out, uint16(h))
	out = append(out, 0x80, 0, 0, 0, 0, 0, 255, 255, 255) // a global table of 2 colours: black, white
	out = append(out, 0x2c, 0, 0, 0, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(w))
	out = binary.LittleEndian.AppendUint16(out, uint16(h))
	fields := byte(0)
	var rows []int
	if interlaced {
		fields = 0x40
		for _, p := range [4][2]int{{0, 8}, {4, 8}, {2, 4}, {1, 2}} {
			for y := p[0]; y < h; y += p[1] {
				rows = append(rows, y)
			}
		}
	} else {
		for y := range h {
			rows = append(rows, y)
		}
	}
	out = append(out, fields, 2) // LZW minimum code size 2
	var lz bytes.Buffer
	lw := lzw.NewWriter(&lz, lzw.LSB, 2)
	made := map[uint64][]byte{}
	for _, y := range rows {
		line, ok := made[ink.rowKey(y)]
		if !ok {
			line = make([]byte, w)
			for x := range line {
				line[x] = 1
				if ink.ink(x, y) {
					line[x] = 0
				}
			}
			made[ink.rowKey(y)] = line
		}
		if _, err := lw.Write(line); err != nil {
			tb.Fatal(err)
		}
	}
	if err := lw.Close(); err != nil {
		tb.Fatal(err)
	}
	for b := lz.Bytes(); len(b) > 0; {
		n := min(len(b), 255)
		out = append(out, byte(n))
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return append(out, 0, 0x3b)
}
