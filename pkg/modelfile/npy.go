package modelfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/mnist-go/nnserver/pkg/network"
)

// The NPY format, as documented in numpy.lib.format: a magic string, a
// version, a little-endian header length, then a Python dict literal
// describing the array, padded with spaces and ended by a newline, then the
// raw data.
const (
	npyMagic = "\x93NUMPY"
	// npyAlign is the boundary NumPy pads the header to so that the data can
	// be memory-mapped with any alignment a dtype needs.
	npyAlign = 64
	// npyGrowthDigits is NumPy's GROWTH_AXIS_MAX_DIGITS: it leaves room in the
	// header for the first axis to grow to this many digits, so a file can be
	// appended to in place. We do the same so our headers are byte-identical
	// to np.save's.
	npyGrowthDigits = 21
	// npyMaxHeader bounds the header we are willing to read. Ours are 128
	// bytes; a few KiB leaves room for any honest writer.
	npyMaxHeader = 4096
	// npyMaxPreamble bounds an NPY entry's preamble: magic, version, header
	// length and header.
	npyMaxPreamble = len(npyMagic) + 2 + 4 + npyMaxHeader
	npyFloat64     = "<f8" // the dtype we write, and all our format reads
	npyFloat32     = "<f4" // also read by Import
)

// npyHeader returns the complete NPY version 1.0 preamble (magic, version,
// header length, header) for a C-order array of little-endian float64 values
// of the given shape, exactly as NumPy 1.24+ writes it.
func npyHeader(shape []int) []byte {
	var b strings.Builder
	b.WriteString("{'descr': '" + npyFloat64 + "', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strconv.Itoa(d))
		// A Python tuple of one element needs a trailing comma.
		if i < len(shape)-1 || len(shape) == 1 {
			b.WriteString(",")
		}
	}
	b.WriteString("), }")
	if len(shape) > 0 {
		b.WriteString(strings.Repeat(" ", max(0, npyGrowthDigits-len(strconv.Itoa(shape[0])))))
	}
	// NumPy pads by a full block when the header is already aligned; so do we.
	pad := npyAlign - (len(npyMagic)+2+2+b.Len()+1)%npyAlign
	b.WriteString(strings.Repeat(" ", pad) + "\n")

	out := make([]byte, 0, len(npyMagic)+4+b.Len())
	out = append(out, npyMagic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(b.Len()))
	return append(out, b.String()...)
}

// writeFloats writes xs as little-endian float64 values, the data part of an
// NPY file of dtype '<f8', using buf (a multiple of 8 bytes long) as scratch
// space. It refuses NaN and infinities, which Decode would refuse to read back.
func writeFloats(w io.Writer, xs []float64, buf []byte) error {
	for len(xs) > 0 {
		n := min(len(xs), len(buf)/8)
		for i, x := range xs[:n] {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return network.ErrNotFinite
			}
			binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(x))
		}
		if _, err := w.Write(buf[:8*n]); err != nil {
			return err
		}
		xs = xs[n:]
	}
	return nil
}

// npyArray describes an NPY array from its preamble.
type npyArray struct {
	shape []int
	dtype string // '<f8' or '<f4'
	size  int    // bytes of the preamble: magic, version, length, header
}

// itemSize returns the bytes of one value.
func (a npyArray) itemSize() int {
	if a.dtype == npyFloat32 {
		return 4
	}
	return 8
}

// count returns the values the shape holds. The shape's dimensions must
// have been bounded (by checked layer sizes) so that the product cannot
// overflow.
func (a npyArray) count() int {
	n := 1
	for _, d := range a.shape {
		n *= d
	}
	return n
}

// readNPYHeader reads an NPY preamble from r. It accepts only what we can
// decode: format version 1.0 or 2.0, C order, dtype '<f8' or '<f4' (the
// caller says which it takes). It reads no more than the preamble, which is
// at most npyMaxPreamble bytes.
func readNPYHeader(r io.Reader) (npyArray, error) {
	shape, size, dtype, err := readNPYPreamble(r)
	return npyArray{shape: shape, dtype: dtype, size: size}, err
}

func readNPYPreamble(r io.Reader) (shape []int, size int, dtype string, err error) {
	var pre [len(npyMagic) + 2]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, 0, "", fmt.Errorf("reading NPY magic: %w", noEOF(err))
	}
	if string(pre[:len(npyMagic)]) != npyMagic {
		return nil, 0, "", errors.New("not an NPY file (bad magic)")
	}
	major, minor := pre[len(npyMagic)], pre[len(npyMagic)+1]
	var hlen int
	switch {
	case major == 1 && minor == 0:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, 0, "", fmt.Errorf("reading NPY header length: %w", noEOF(err))
		}
		hlen = int(binary.LittleEndian.Uint16(l[:]))
	case major == 2 && minor == 0:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, 0, "", fmt.Errorf("reading NPY header length: %w", noEOF(err))
		}
		// Compare before converting so a huge value cannot wrap on 32-bit int.
		n := binary.LittleEndian.Uint32(l[:])
		if n > npyMaxHeader {
			return nil, 0, "", fmt.Errorf("NPY header of %d bytes is too long", n)
		}
		hlen = int(n)
	default:
		return nil, 0, "", fmt.Errorf("unsupported NPY format version %d.%d", major, minor)
	}
	if hlen > npyMaxHeader {
		return nil, 0, "", fmt.Errorf("NPY header of %d bytes is too long", hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, 0, "", fmt.Errorf("reading NPY header: %w", noEOF(err))
	}
	shape, dtype, err = parseNPYDict(string(h))
	if err != nil {
		return nil, 0, "", fmt.Errorf("NPY header %.80q: %w", h, err)
	}
	size = len(pre) + 2 + hlen
	if major == 2 {
		size += 2
	}
	return shape, size, dtype, nil
}

// noEOF turns a clean EOF into an unexpected one: wherever we read, more
// bytes were promised.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseNPYDict parses the header dict, a Python literal such as
//
//	{'descr': '<f8', 'fortran_order': False, 'shape': (30, 784), }
//
// followed by spaces and a newline. It is a strict parser for the subset of
// Python NumPy writes, not a Python evaluator: it never allocates more than
// the header's own length. It returns the shape and the dtype, '<f8' or
// '<f4'.
func parseNPYDict(h string) ([]int, string, error) {
	p := &dictParser{s: h}
	p.space()
	if !p.eat('{') {
		return nil, "", errors.New("header is not a dict")
	}
	var (
		descr, order string
		shape        []int
		seen         = map[string]bool{}
	)
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, "", fmt.Errorf("key: %w", err)
		}
		if seen[key] {
			return nil, "", fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return nil, "", fmt.Errorf("missing ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			descr, err = p.str()
		case "fortran_order":
			order, err = p.word()
		case "shape":
			shape, err = p.tuple()
		default:
			return nil, "", fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat('}') {
				return nil, "", errors.New("expected ',' or '}'")
			}
			break
		}
	}
	if strings.TrimRight(p.s[p.i:], " \t\r\n") != "" {
		return nil, "", errors.New("trailing data after the dict")
	}
	if !strings.HasSuffix(h, "\n") {
		return nil, "", errors.New("header does not end with a newline")
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return nil, "", errors.New("header lacks descr, fortran_order or shape")
	}
	if descr != npyFloat64 && descr != npyFloat32 {
		return nil, "", fmt.Errorf("dtype %q, want %q or %q (little-endian float64 or float32)", descr, npyFloat64, npyFloat32)
	}
	switch order {
	case "False":
	case "True":
		return nil, "", errors.New("arrays in Fortran order are not supported")
	default:
		return nil, "", fmt.Errorf("fortran_order is %q, want False", order)
	}
	return shape, descr, nil
}

type dictParser struct {
	s string
	i int
}

func (p *dictParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *dictParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a quoted string without escapes, as repr() writes dtype names.
func (p *dictParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("expected a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsAny(v, "\\\n") {
		return "", errors.New("escapes are not supported in strings")
	}
	p.i += end + 2
	return v, nil
}

// word reads a bare identifier such as True or False.
func (p *dictParser) word() (string, error) {
	j := p.i
	for j < len(p.s) && (p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= 'A' && p.s[j] <= 'Z') {
		j++
	}
	if j == p.i {
		return "", errors.New("expected True or False")
	}
	w := p.s[p.i:j]
	p.i = j
	return w, nil
}

// maxDims bounds the dimensions we accept; our arrays have one or two.
const maxDims = 8

// tuple reads a tuple of non-negative integers: (), (n,), (n, m) and so on.
// As in Python, one element needs a trailing comma: (n) is not a tuple.
func (p *dictParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("expected a tuple")
	}
	var dims []int
	for {
		p.space()
		if p.eat(')') {
			// Here after "(" or after a comma, so (n,) is accepted.
			return dims, nil
		}
		if len(dims) == maxDims {
			return nil, fmt.Errorf("more than %d dimensions", maxDims)
		}
		d, err := p.int()
		if err != nil {
			return nil, err
		}
		dims = append(dims, d)
		p.space()
		if p.eat(',') {
			continue
		}
		if !p.eat(')') {
			return nil, errors.New("expected ',' or ')' in tuple")
		}
		if len(dims) == 1 {
			return nil, errors.New("(n) is not a tuple; want (n,)")
		}
		return dims, nil
	}
}

// int reads a non-negative decimal integer, refusing values that could
// overflow later arithmetic.
func (p *dictParser) int() (int, error) {
	j := p.i
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	digits := p.s[p.i:j]
	switch {
	case digits == "":
		return 0, errors.New("expected an integer")
	case len(digits) > 1 && digits[0] == '0':
		return 0, fmt.Errorf("integer %q has a leading zero", digits)
	case len(digits) > 9:
		return 0, fmt.Errorf("dimension %s is too large", digits)
	}
	p.i = j
	return strconv.Atoi(digits)
}

// readFloats reads exactly len(dst) little-endian float64 values from r into
// dst, using buf (a multiple of 8 bytes long) as scratch space.
func readFloats(r io.Reader, dst []float64, buf []byte) error {
	for len(dst) > 0 {
		n := min(len(dst), len(buf)/8)
		if _, err := io.ReadFull(r, buf[:8*n]); err != nil {
			return noEOF(err)
		}
		for i := range dst[:n] {
			dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
		}
		dst = dst[n:]
	}
	return nil
}

// readFloats32 reads exactly len(dst) little-endian float32 values from r
// into dst, converting them to float64 (exactly: every float32 is a
// float64), using buf (a multiple of 4 bytes long) as scratch space.
func readFloats32(r io.Reader, dst []float64, buf []byte) error {
	for len(dst) > 0 {
		n := min(len(dst), len(buf)/4)
		if _, err := io.ReadFull(r, buf[:4*n]); err != nil {
			return noEOF(err)
		}
		for i := range dst[:n] {
			dst[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
		dst = dst[n:]
	}
	return nil
}
