package digit_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// countingCtx is a context that counts how often its Err is called, and
// once it has been called cancelAt times (if cancelAt > 0), is cancelled:
// a deterministic stand-in for a client going away at a given point of the
// work. Only Err is used by the package.
type countingCtx struct {
	context.Context
	calls, cancelAt int
}

func (c *countingCtx) Err() error {
	c.calls++
	if c.cancelAt > 0 && c.calls >= c.cancelAt {
		return context.Canceled
	}
	return nil
}

// pngDeclaring returns a PNG whose header declares w×h pixels of the depth
// and colour type, interlaced or not, followed by an empty IDAT (a zlib
// stream of nothing) and IEND: a few dozen bytes.
func pngDeclaring(w, h uint32, depth, ct byte, interlaced bool) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	il := byte(0)
	if interlaced {
		il = 1
	}
	b = pngChunk(b, "IHDR", append(ihdr, depth, ct, 0, 0, il))
	b = pngChunk(b, "IDAT", []byte{0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	return pngChunk(b, "IEND", nil)
}

// cmykBomb is the 4-component attack: a progressive YCCK JPEG declaring
// 4096×4096 with one AC scan per component and no DC scan, each marking
// every block empty, in a few hundred bytes. image/jpeg would allocate 4
// planes, 4 coefficient arrays and a CMYK copy: 331 MB.
func cmykBomb() []byte {
	j := progressive(4096, 4096, cmyk, 5)
	j.scans = j.scans[1:]
	j.jfif, j.adobe, j.ink = false, 2, nil
	return j.encode()
}

// TestInspect checks what Inspect says of images it accepts, of every kind,
// and that FromImage accepts them too (under -short, not the largest):
// their size, and their work in passes over their pixels (Work / (W·H),
// besides a PNG's work per byte), from the formulas.
func TestInspect(t *testing.T) {
	sequentialTwice := baseline(200, 100, yuv444) // Y, then Cb and Cr, in two scans
	sequentialTwice.scans = []jpegScan{{comps: []int{0}, se: 63}, {comps: []int{1, 2}, se: 63}}
	restarts := baseline(300, 200, yuv420)
	restarts.restart, restarts.junk = 3, true
	greyRestarts := baseline(300, 200, grey1)
	greyRestarts.restart, greyRestarts.junk = 1, true
	progJunk := progressive(240, 160, yuv444, digit.MaxProgressiveScans)
	progJunk.junk = true
	big16 := pngDeclaring(1024, 2048, 16, 6, false) // enough for Inspect
	if !testing.Short() {
		big16 = pngImage{w: 1024, h: 2048, depth: 16, ct: 6, ink: cross(1024, 2048)}.encode(t)
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		format string
		w, h   int
		passes float64 // Work / (W·H)
	}{
		{"PNG from image/png", encodePNG(t, picture(100, 80, white, black, bar)), "PNG", 100, 80, 5},
		{"JPEG from image/jpeg", encodeJPEG(t, picture(100, 80, white, black, bar), 75), "JPEG", 100, 80, 0},
		{"GIF from image/gif", encodeGIF(t, picture(100, 80, white, black, bar)), "GIF", 100, 80, 5},
		{"baseline JPEG, 4:4:4", baseline(256, 128, yuv444).encode(), "JPEG", 256, 128, 4 + 3},
		{"baseline JPEG, 4:2:0", baseline(256, 128, yuv420).encode(), "JPEG", 256, 128, 4 + 1.5},
		{"baseline JPEG, grey", baseline(256, 128, grey1).encode(), "JPEG", 256, 128, 4 + 1},
		{"sequential JPEG of two scans", sequentialTwice.encode(), "JPEG", 200, 100, 0},
		{"JPEG with restarts and bytes to skip", restarts.encode(), "JPEG", 300, 200, 0},
		{"grey JPEG with a restart every block", greyRestarts.encode(), "JPEG", 300, 200, 0},
		{"progressive JPEG of the most scans, 4:4:4", progressive(256, 128, yuv444, digit.MaxProgressiveScans).encode(), "JPEG", 256, 128,
			4 + (3 + 23) + 3}, // preprocessing, the scans, the inverse DCT
		{"progressive JPEG of the most scans, and bytes to skip", progJunk.encode(), "JPEG", 240, 160, 0},
		{"progressive JPEG of the most pixels", progressive(2048, 1024, grey1, 6).encode(), "JPEG", 2048, 1024, 4 + 6 + 1},
		{"16-bit PNG of the most pixels", big16, "PNG", 1024, 2048, 5},
		{"interlaced PNG", pngImage{w: 300, h: 200, depth: 8, ct: 2, interlaced: true, ink: cross(300, 200)}.encode(t), "PNG", 300, 200, 6},
		{"1-bit grey PNG with tRNS", pngImage{w: 300, h: 200, depth: 1, ct: 0, trns: true, ink: cross(300, 200)}.encode(t), "PNG", 300, 200, 5},
		{"4-bit palette PNG, interlaced", pngImage{w: 301, h: 203, depth: 4, ct: 3, interlaced: true, ink: cross(301, 203)}.encode(t), "PNG", 301, 203, 6},
		{"interlaced GIF", gifImage(t, 300, 200, cross(300, 200), true), "GIF", 300, 200, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := digit.Inspect(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if c.Format != tc.format || c.Width != tc.w || c.Height != tc.h {
				t.Errorf("Inspect: %s of %d×%d, want %s of %d×%d", c.Format, c.Width, c.Height, tc.format, tc.w, tc.h)
			}
			if c.Bytes <= int64(tc.w*tc.h) || c.Bytes > digit.MaxDecodeBytes {
				t.Errorf("Inspect: %d bytes", c.Bytes)
			}
			work := c.Work
			if c.Format == "PNG" {
				work -= 128 * int64(len(tc.data)) // for the zlib stream
			}
			passes := float64(work) / float64(tc.w*tc.h)
			if tc.passes != 0 && passes != tc.passes {
				t.Errorf("Inspect: work of %.2f passes, want %.2f", passes, tc.passes)
			}
			if tc.w*tc.h >= digit.MaxCostlyPixels && testing.Short() {
				return
			}
			x, err := digit.FromImage(t.Context(), tc.data)
			if err != nil {
				t.Fatal(err)
			}
			checkInput(t, x)
		})
	}
}

// refusal is an image Inspect refuses, and how.
type refusal struct {
	name string
	data []byte
	kind error
	msg  string
}

// bombs are the attacks found, and images just beyond each bound: Inspect
// must refuse them from their structure alone.
func bombs(t *testing.T) []refusal {
	twice := baseline(200, 100, yuv444)
	twice.scans = append(twice.scans, jpegScan{comps: []int{0}, se: 63})
	rgb := baseline(4096, 4096, rgb444)
	rgb.jfif, rgb.rgb = false, true
	return []refusal{
		{"scan bomb as found: 4096×4096, 1500 scans (62 KB)", scanBomb(4096, 4096, 1500), digit.ErrTooCostly,
			"image is a progressive JPEG of 4096×4096 pixels, more than the 2097152 (2048×1024) allowed for a progressive JPEG"},
		{"scan bomb within the pixels: 2048×1024, 3000 scans", scanBomb(2048, 1024, 3000), digit.ErrTooCostly,
			"image is a progressive JPEG of more than 24 scans, the most allowed (encoders use at most 16)"},
		{"progressive JPEG of one scan too many", progressive(256, 128, yuv444, digit.MaxProgressiveScans+1).encode(), digit.ErrTooCostly,
			"more than 24 scans"},
		{"progressive JPEG of one pixel row too many", progressive(2048, 1025, grey1, 6).encode(), digit.ErrTooCostly,
			"progressive JPEG of 2048×1025 pixels, more than the 2097152"},
		{"4-component bomb: progressive YCCK of 4096×4096", cmykBomb(), digit.ErrTooCostly,
			"image is a JPEG of 4 colour components (CMYK or YCCK): more than 3 colour components are not supported"},
		{"small CMYK JPEG", func() []byte { j := baseline(100, 100, cmyk); j.adobe = 0; return j.encode() }(), digit.ErrTooCostly,
			"more than 3 colour components are not supported"},
		{"sequential JPEG coding a component twice", twice.encode(), digit.ErrTooCostly,
			"image is a sequential JPEG that codes colour component 1 in more than one scan"},
		{"RGB JPEG of 4096×4096", rgb.encode(), digit.ErrTooCostly,
			"image (a JPEG of 4096×4096 pixels) would need 134" /* 134,742,016 bytes */},
		{"16-bit interlaced PNG declaring 4096×4096", pngDeclaring(4096, 4096, 16, 6, true), digit.ErrTooCostly,
			"image is a 16-bit interlaced PNG of 4096×4096 pixels, more than the 2097152 (2048×1024) allowed"},
		{"16-bit PNG of one row too many", pngDeclaring(1024, 2049, 16, 0, false), digit.ErrTooCostly,
			"image is a 16-bit PNG of 1024×2049 pixels"},
		{"8-bit interlaced PNG of 4096×4096", pngDeclaring(4096, 4096, 8, 3, true), digit.ErrTooCostly,
			"image is an interlaced PNG of 4096×4096 pixels, more than the 2097152 (2048×1024) allowed for an interlaced PNG"},
		{"lossless JPEG", jpegSOF(0xc3), digit.ErrCorrupt, "unsupported JPEG feature: lossless coding (SOF3)"},
		{"arithmetic-coded JPEG", jpegSOF(0xc9), digit.ErrCorrupt, "unsupported JPEG feature: arithmetic coding"},
		{"hierarchical JPEG", jpegSOF(0xc5), digit.ErrCorrupt, "unsupported JPEG feature: hierarchical coding (SOF5)"},
		{"JPEG of a scan before its frame", []byte{0xff, 0xd8, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0xff, 0xd9}, digit.ErrCorrupt,
			"invalid JPEG: missing SOF marker"},
		{"JPEG of no scan", append(jpegHeader(100, 100)[:21], 0xff, 0xd9), digit.ErrCorrupt, "invalid JPEG: missing SOS marker"},
		{"JPEG of two frames", func() []byte {
			h := jpegHeader(100, 100)[:21]
			return append(append(h, h[2:]...), 0xff, 0xd9)
		}(), digit.ErrCorrupt, "invalid JPEG: multiple SOF markers"},
		{"JPEG cut in a scan", func() []byte { b := baseline(300, 200, yuv444).encode(); return b[:len(b)-40] }(), digit.ErrCorrupt,
			"truncated JPEG: unexpected EOF"},
		{"2-component JPEG", func() []byte {
			j := baseline(100, 100, yuv444[:2])
			return j.encode()
		}(), digit.ErrCorrupt, "unsupported JPEG feature: number of components"},
		{"12-bit JPEG", func() []byte {
			b := baseline(100, 100, grey1).encode()
			b[bytes.Index(b, []byte{0xff, 0xc0})+4] = 12
			return b
		}(),
			digit.ErrCorrupt, "unsupported JPEG feature: precision"},
		{"PNG of a palette before its header", append([]byte("\x89PNG\r\n\x1a\n"), pngChunk(nil, "PLTE", []byte{0, 0, 0})...), digit.ErrCorrupt,
			"invalid PNG: chunk out of order"},
		{"PNG of 16-bit palette", pngDeclaring(10, 10, 16, 3, false), digit.ErrCorrupt,
			"unsupported PNG feature: bit depth 16, color type 3"},
		{"PNG of an unknown interlace", func() []byte { b := pngDeclaring(10, 10, 8, 0, false); b[28] = 2; fixIHDR(b); return b }(),
			digit.ErrCorrupt, "invalid PNG: invalid interlace method"},
		{"GIF of an unknown version", append([]byte("GIF88a"), gifHeader(10, 10)[6:]...), digit.ErrCorrupt, `invalid GIF: can't recognize format "GIF88a"`},
	}
}

// jpegSOF returns a JPEG whose frame has the marker.
func jpegSOF(marker byte) []byte {
	b := jpegHeader(100, 100)
	b[3] = marker
	return b
}

// fixIHDR recomputes the checksum of a PNG's IHDR.
func fixIHDR(b []byte) {
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
}

// TestInspectRefuses checks that the bombs and the images beyond the
// bounds are refused, by Inspect and by FromImage alike, from their
// structure: FromImage never reads them (it never looks at its context,
// which it does before every read), and allocates next to nothing.
func TestInspectRefuses(t *testing.T) {
	for _, tc := range bombs(t) {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.data) > digit.MaxImageBytes {
				t.Fatalf("%d bytes: the test is wrong", len(tc.data))
			}
			_, err := digit.Inspect(tc.data)
			wantError(t, err, tc.kind, tc.msg)
			if tc.kind == digit.ErrCorrupt {
				if e, _ := errors.AsType[*digit.Error](err); e.Err == nil {
					t.Errorf("no cause kept for the logs")
				}
			}

			ctx := &countingCtx{Context: t.Context()}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			x, err2 := digit.FromImage(ctx, tc.data)
			runtime.ReadMemStats(&after)
			if x != nil || err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("FromImage: %v, want Inspect's %q", err2, err)
			}
			if ctx.calls != 0 {
				t.Errorf("FromImage looked at its context %d times: it started decoding", ctx.calls)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
				t.Errorf("FromImage allocated %d bytes to refuse it, want < 64 KiB", n)
			}
		})
	}

	// The bombs are small.
	if n := len(cmykBomb()); n > 400 {
		t.Errorf("the 4-component bomb is %d bytes, want a few hundred", n)
	}
	if n := len(scanBomb(4096, 4096, 1500)); n > 64<<10 {
		t.Errorf("the scan bomb is %d bytes, want about 64 KB", n)
	}
}
