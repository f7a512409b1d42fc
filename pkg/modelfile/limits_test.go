package modelfile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// deflated returns a raw deflate stream of prefix followed by zeros zero
// bytes. It is made of one compressed MiB of zeros repeated (each piece
// ends on a sync flush, so pieces can be concatenated), so a stream that
// inflates to hundreds of megabytes costs the test a millisecond.
func deflated(t testing.TB, prefix []byte, zeros int64) []byte {
	t.Helper()
	piece := func(data []byte, final bool) []byte {
		var b bytes.Buffer
		w, err := flate.NewWriter(&b, flate.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if final {
			err = w.Close()
		} else {
			err = w.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	const mib = 1 << 20
	out := piece(prefix, false)
	zeroMiB := piece(make([]byte, mib), false)
	for range zeros / mib {
		out = append(out, zeroMiB...)
	}
	return append(out, piece(make([]byte, zeros%mib), true)...)
}

// rawEntry is an archive member whose zip directory fields are given, true
// or not.
type rawEntry struct {
	name         string
	method       uint16
	data         []byte // as stored: compressed if method is zip.Deflate
	uncompressed uint64
	crc          uint32
}

// honest returns data as a stored entry with true sizes and CRC.
func honest(name string, data []byte) rawEntry {
	return rawEntry{name: name, method: zip.Store, data: data, uncompressed: uint64(len(data)), crc: crc32.ChecksumIEEE(data)}
}

func rawZip(t testing.TB, es []rawEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range es {
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: e.name, Method: e.method, CRC32: e.crc,
			CompressedSize64: uint64(len(e.data)), UncompressedSize64: e.uncompressed,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// metaJSON returns the fixture's meta.json with layer_sizes set to sizes.
func metaJSON(t testing.TB, sizes []int) []byte {
	for _, e := range unzip(t, editMeta(t, "layer_sizes", sizes)) {
		if e.name == metaEntry {
			return e.data
		}
	}
	t.Fatal("no meta.json")
	return nil
}

// zipBomb is a 378 KB file declaring a network of 784-60000-10, 47.7M
// parameters (under the format's cap, far over the default limit), whose
// weights are deflated zeros that inflate to 376 MB, their true size.
func zipBomb(t testing.TB) []byte {
	sizes := []int{784, 60000, 10}
	es := []rawEntry{honest(metaEntry, metaJSON(t, sizes))}
	for l := 1; l < len(sizes); l++ {
		for _, a := range []struct {
			name  string
			shape []int
		}{{weightEntry(l - 1), []int{sizes[l], sizes[l-1]}}, {biasEntry(l - 1), []int{sizes[l]}}} {
			h := npyHeader(a.shape)
			n := int64(8)
			for _, d := range a.shape {
				n *= int64(d)
			}
			es = append(es, rawEntry{name: a.name, method: zip.Deflate, data: deflated(t, h, n), uncompressed: uint64(len(h)) + uint64(n)})
		}
	}
	return rawZip(t, es)
}

// lyingW0 returns the fixture's archive with w0.npy replaced by a deflated
// entry whose directory records the size and CRC-32 the shape (2, 3) needs,
// size bytes and crc, but whose stream holds the header and then extra
// zero bytes instead of the six values.
func lyingW0(t testing.TB, size uint64, crcOf []byte, extra int64) []byte {
	m, n := fixture(t)
	var es []rawEntry
	for _, e := range unzip(t, encode(t, m, n)) {
		if e.name != "w0.npy" {
			es = append(es, honest(e.name, e.data))
			continue
		}
		h := npyHeader([]int{2, 3})
		es = append(es, rawEntry{name: e.name, method: zip.Deflate, data: deflated(t, h, extra), uncompressed: size, crc: crc32.ChecksumIEEE(crcOf)})
	}
	return rawZip(t, es)
}

// manyEntries returns an archive of n empty entries.
func manyEntries(t testing.TB, n int) []byte {
	es := make([]zipEntry, n)
	for i := range es {
		es[i].name = fmt.Sprint(i)
	}
	return rezip(t, es)
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		lim     Limits
		want    Limits
		wantErr string
	}{
		{Limits{}, Limits{DefaultMaxLayers, DefaultMaxParams, DefaultMaxMACs, DefaultMaxActivations}, ""},
		{Limits{MaxLayers: 3}, Limits{3, DefaultMaxParams, DefaultMaxMACs, DefaultMaxActivations}, ""},
		{Limits{MaxParams: 7}, Limits{DefaultMaxLayers, 7, DefaultMaxMACs, DefaultMaxActivations}, ""},
		{Limits{MaxMACs: 9, MaxActivations: 8}, Limits{DefaultMaxLayers, DefaultMaxParams, 9, 8}, ""},
		{Limits{MaxLayers, MaxParams, MaxMACs, MaxActivations}, Limits{MaxLayers, MaxParams, MaxMACs, MaxActivations}, ""},
		{Limits{MaxLayers: MaxLayers + 1}, Limits{}, "MaxLayers 65"},
		{Limits{MaxLayers: 1}, Limits{}, "MaxLayers 1"},
		{Limits{MaxParams: MaxParams + 1}, Limits{}, "MaxParams 50000001"},
		{Limits{MaxMACs: MaxMACs + 1}, Limits{}, "MaxMACs"},
		{Limits{MaxActivations: -1}, Limits{}, "MaxActivations -1"},
		{Limits{MaxParams: -1}, Limits{}, "MaxParams -1"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.lim), func(t *testing.T) {
			got, err := tc.lim.Resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Resolve() = %+v, want %+v", got, tc.want)
			}
		})
	}
	// Every writer and reader resolves the limits it is given: beyond the
	// format's caps, they refuse to start.
	for _, lim := range []Limits{{MaxLayers: MaxLayers + 1}, {MaxParams: -1}} {
		m, n := fixture(t)
		var b bytes.Buffer
		if err := EncodeWithin(&b, m, n, lim); err == nil || b.Len() != 0 {
			t.Errorf("EncodeWithin with limits %+v: %v, %d bytes written; want an error and nothing", lim, err, b.Len())
		}
		if _, _, err := decodeAs(saved(t, m, n), lim, fixtureID); err == nil {
			t.Errorf("DecodeAs with limits %+v succeeded", lim)
		}
	}
}

// TestEncodeWithinLimits checks that EncodeWithin, as a store's Save, holds
// networks to the limits it is given, and writes nothing it refuses.
func TestEncodeWithinLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lim     Limits
		sizes   []int
		wantErr string // empty: EncodeWithin succeeds
	}{
		{"at MaxLayers", Limits{MaxLayers: 4}, []int{3, 2, 2, 2}, ""},
		{"over MaxLayers", Limits{MaxLayers: 3}, []int{3, 2, 2, 2}, "4 layers, more than the limit of 3 (MaxLayers)"},
		{"at MaxParams", Limits{MaxParams: 3*4 + 2*4}, []int{3, 3, 2}, ""},
		{"over MaxParams", Limits{MaxParams: 3*4 + 2*4 - 1}, []int{3, 3, 2}, "need 20 weights and biases, more than the limit of 19 (MaxParams)"},
		{"a layer over MaxParams", Limits{MaxParams: 10}, []int{11, 1}, "layer 0 has 11 neurons"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeta(newID(), tc.sizes)
			n := newNet(t, tc.sizes, 1)
			var b bytes.Buffer
			err := EncodeWithin(&b, m, n, tc.lim)
			if cerr := CheckEncodable(m, n, tc.lim); (cerr == nil) != (err == nil) {
				t.Errorf("CheckEncodable: %v; EncodeWithin: %v", cerr, err)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := decodeAs(b.Bytes(), tc.lim, m.ID); err != nil {
					t.Errorf("DecodeAs of what EncodeWithin wrote: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("EncodeWithin: %v, want ErrTooLarge containing %q", err, tc.wantErr)
			}
			if b.Len() != 0 {
				t.Errorf("EncodeWithin wrote %d bytes", b.Len())
			}
		})
	}
}

// TestReadLimits checks that DecodeAs and DecodeEntryAs (a store's Load and
// List) refuse files beyond the limits they are given or the zip
// directory's own word, before allocating or inflating what the file asks
// for.
func TestReadLimits(t *testing.T) {
	sixtyFour := []int{784, 6400, 10} // 5,088,010 parameters
	for _, tc := range []struct {
		name    string
		lim     Limits
		data    []byte
		wantErr string
		tooBig  bool // the error must wrap ErrTooLarge
		listOK  bool // DecodeEntryAs reads only headers and does not notice
	}{
		{"over the operator's MaxParams, under the format's", Limits{}, editMeta(t, "layer_sizes", sixtyFour),
			"need 5088010 weights and biases, more than the limit of 5000000 (MaxParams)", true, false},
		// The same file, on a server that allows it, gets past the limit and
		// fails on its (fixture's) arrays: the limit is the operator's.
		{"under a raised MaxParams", Limits{MaxParams: 6_000_000}, editMeta(t, "layer_sizes", sixtyFour),
			"does not match the layer sizes", false, false},
		{"over the operator's MaxLayers", Limits{MaxLayers: 2}, editMeta(t, "layer_sizes", []int{3, 2, 2}),
			"3 layers, more than the limit of 2 (MaxLayers)", true, false},
		{"zip bomb of 47.7M parameters", Limits{}, zipBomb(t),
			"need 47700010 weights and biases, more than the limit of 5000000 (MaxParams)", true, false},
		{"lying directory: the stream inflates to 256 MB", Limits{}, lyingW0(t, 128+48, append(npyHeader([]int{2, 3}), make([]byte, 48)...), 256<<20),
			"data longer than the 176 bytes the zip directory records", false, true},
		{"lying directory: a huge size for a small shape", Limits{}, lyingW0(t, 1<<40, nil, 48),
			"holds 1099511627776 bytes, more than the 4156", true, false},
		{"lying directory: the stream ends early", Limits{}, lyingW0(t, 128+48, nil, 40),
			"unexpected EOF", false, true},
		{"lying directory: stored sizes differ", Limits{}, rawZip(t, []rawEntry{{name: metaEntry, method: zip.Store, data: []byte("{}"), uncompressed: 1}}),
			"inconsistent", false, false},
		{"a directory too large to read", Limits{}, manyEntries(t, 30_000), "zip directory is larger than", true, false},
		{"too many entries", Limits{}, manyEntries(t, maxEntries+1), "1025 entries", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeAs(tc.data, tc.lim, fixtureID)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Errorf("DecodeAs: %v, want an error containing %q (wrapping ErrTooLarge: %v)", err, tc.wantErr, tc.tooBig)
			}
			_, err = decodeEntryAs(tc.data, tc.lim, fixtureID)
			if tc.listOK {
				if err != nil {
					t.Errorf("DecodeEntryAs: %v; want the file accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Errorf("DecodeEntryAs: %v, want an error containing %q (wrapping ErrTooLarge: %v)", err, tc.wantErr, tc.tooBig)
			}
		})
	}
}

// TestZipBombCost measures what refusing a zip bomb and a lying directory
// costs: nowhere near what the file asks for.
func TestZipBombCost(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"zip bomb of 47.7M parameters", zipBomb(t)},
		{"lying directory: the stream inflates to 256 MB", lyingW0(t, 128+48, nil, 256<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, _, err := decodeAs(tc.data, Limits{}, fixtureID)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("DecodeAs succeeded")
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte file refused in %v, %d bytes allocated: %v", len(tc.data), elapsed, alloc, err)
			// Reading the directory, meta.json and one NPY header, with a
			// 64 KiB buffer and a flate decompressor, takes a few hundred
			// KiB; the file asks for hundreds of MB.
			if alloc > 8<<20 {
				t.Errorf("refusing the file allocated %d bytes", alloc)
			}
		})
	}
}

func BenchmarkRefuseZipBomb(b *testing.B) {
	bomb := zipBomb(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeAs(bomb, Limits{}, fixtureID); err == nil {
			b.Fatal("DecodeAs succeeded")
		}
	}
}

// TestCodecLimits checks that the codec holds bytes to the limits it is
// given, and Encode only to the format's caps: a store with raised limits
// writes networks a default one refuses to read.
func TestCodecLimits(t *testing.T) {
	sizes := slices.Repeat([]int{2}, DefaultMaxLayers+1)
	m := newMeta(newID(), sizes)
	n := newNet(t, sizes, 4)
	b := encode(t, m, n)
	r := bytes.NewReader(b)
	if _, err := DecodeEntry(r, r.Size(), Limits{}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "11 layers, more than the limit of 10 (MaxLayers)") {
		t.Errorf("DecodeEntry with the default limits: %v, want ErrTooLarge naming MaxLayers", err)
	}
	if _, _, err := Decode(r, r.Size(), Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode with zero (default) limits: %v, want ErrTooLarge", err)
	}
	gm, gn, err := Decode(r, r.Size(), Limits{MaxLayers: 11})
	if err != nil {
		t.Fatalf("Decode with MaxLayers 11: %v", err)
	}
	sameMeta(t, gm, m)
	sameNetwork(t, gn, n)
	if _, _, err := Decode(r, r.Size(), Limits{MaxLayers: MaxLayers + 1}); err == nil || !strings.Contains(err.Error(), "MaxLayers 65") {
		t.Errorf("Decode with limits beyond the format's: %v, want an error", err)
	}

	m.Sizes = slices.Repeat([]int{1}, MaxLayers+1)
	if err := Encode(io.Discard, m, newNet(t, m.Sizes, 1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode beyond the format's MaxLayers: %v, want ErrTooLarge", err)
	}
}
