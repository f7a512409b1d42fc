package digit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
)

// A format is one image format this package decodes.
type format struct {
	name    string
	magic   string
	inspect func([]byte) (Cost, error)
	decode  func(io.Reader) (image.Image, error)
}

// pngSignature starts every PNG.
const pngSignature = "\x89PNG\r\n\x1a\n"

// formats are recognised by their first bytes, never by what a client says.
var formats = []format{
	{"PNG", pngSignature, inspectPNG, png.Decode},
	{"JPEG", "\xff\xd8", inspectJPEG, jpeg.Decode},
	{"GIF", "GIF8", inspectGIF, gif.Decode},
}

// formatOf returns the format data's first bytes say, or nil.
func formatOf(data []byte) *format {
	for i := range formats {
		if bytes.HasPrefix(data, []byte(formats[i].magic)) {
			return &formats[i]
		}
	}
	return nil
}

// Decode decodes a PNG, JPEG or GIF image (the format is recognised from the
// bytes; for a GIF, its first frame) that Inspect accepts: at most
// MaxImageBytes of data, at most MaxImageSide pixels a side, and within the
// bounds on costly images. Inspect reads the image's structure before any
// pixel is decoded, so a refused image costs nothing. Errors caused by the
// image are *Error of kind ErrEmpty, ErrTooLarge, ErrFormat, ErrCorrupt or
// ErrTooCostly.
//
// The decoder reads data through a reader that checks ctx before every read
// of at most ctxReadSize (1 KiB): once ctx is done, decoding stops at the
// next read, and Decode returns an error wrapping ctx.Err() (not an
// *Error). Between two reads, a decoder does the work of 1 KiB of data: for
// the most compressible PNG, about a megabyte of pixels (a few
// milliseconds). A progressive JPEG's final inverse DCT, after the last
// read, is not interrupted (at most a pass over MaxCostlyPixels, tens of
// milliseconds).
func Decode(ctx context.Context, data []byte) (image.Image, error) {
	if _, err := Inspect(data); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, stopped(err)
	}
	f := formatOf(data)
	img, err := f.decode(&ctxReader{ctx: ctx, r: bytes.NewReader(data)})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil { // the decoders may word the reader's error away
			return nil, stopped(cerr)
		}
		return nil, decodeError(f.name, err)
	}
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy()); err != nil { // a GIF frame is within the header's size; be sure
		return nil, err
	}
	return img, nil
}

// stopped is the error for work stopped because its context is done.
func stopped(err error) error { return fmt.Errorf("digit: image conversion stopped: %w", err) }

// ctxReadSize is the most a ctxReader reads at once.
const ctxReadSize = 1 << 10

// ctxReader reads from r, at most ctxReadSize bytes at a time, until ctx is
// done. It has no ReadByte, so that the GIF and zlib decoders read it
// through a buffer (and JPEG's has its own): ctx is checked once per KiB of
// data.
type ctxReader struct {
	ctx context.Context
	r   *bytes.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p[:min(len(p), ctxReadSize)])
}

// checkSize checks an image's dimensions against the caps.
func checkSize(w, h int) error {
	if w <= 0 || h <= 0 {
		return errorf(ErrEmpty, "image has no pixels (%d×%d)", max(w, 0), max(h, 0))
	}
	if w > MaxImageSide || h > MaxImageSide {
		return errorf(ErrTooLarge, "image is %d×%d pixels, more than %d×%d", w, h, MaxImageSide, MaxImageSide)
	}
	return nil
}

// decodeError words a decoder's error for the client, as an *Error of kind
// ErrCorrupt wrapping it.
func decodeError(name string, err error) *Error {
	var msg string
	s := err.Error()
	switch e := err.(type) {
	case png.FormatError:
		msg = "invalid PNG: " + string(e)
		if e == "not enough pixel data" { // the compressed pixels end too soon
			msg = "truncated PNG: " + string(e)
		}
	case png.UnsupportedError:
		msg = "unsupported PNG feature: " + string(e)
	case jpeg.FormatError:
		msg = "invalid JPEG: " + string(e)
	case jpeg.UnsupportedError:
		msg = "unsupported JPEG feature: " + string(e)
	default:
		// gif's errors wrap their cause with %v: the words tell.
		msg = "invalid " + name + ": " + strings.TrimPrefix(s, strings.ToLower(name)+": ")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.HasSuffix(s, io.ErrUnexpectedEOF.Error()) || strings.HasSuffix(s, io.EOF.Error()) {
		msg = "truncated " + name + ": unexpected EOF"
	}
	return &Error{Kind: ErrCorrupt, Message: msg, Err: err}
}

// maxBase64Len is the length of MaxImageBytes in padded base64.
var maxBase64Len = base64.StdEncoding.EncodedLen(MaxImageBytes)

// DecodeBase64Image decodes an image sent as text: plain base64, in the
// standard or the URL-safe alphabet, padded or not, line breaks allowed; or a
// data URL, "data:image/png;base64,..." (also image/jpeg, image/jpg,
// image/gif). The decoded image may be at most MaxImageBytes long: a longer
// text is refused before anything is decoded. It does not look at the bytes
// decoded: FromImage does. Errors are of kind ErrEmpty, ErrTooLarge or
// ErrBase64.
func DecodeBase64Image(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if rest, ok := cutPrefixFold(s, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		if !ok {
			return nil, errorf(ErrBase64, "data URL has no comma before its data")
		}
		params := strings.Split(meta, ";")
		mediaType := strings.ToLower(strings.TrimSpace(params[0]))
		switch mediaType {
		case "image/png", "image/jpeg", "image/jpg", "image/gif":
		default:
			if mediaType == "" {
				mediaType = "none"
			}
			return nil, errorf(ErrBase64, "data URL has media type %.40q, want image/png, image/jpeg or image/gif", mediaType)
		}
		isBase64 := false
		for _, p := range params[1:] {
			isBase64 = isBase64 || strings.EqualFold(strings.TrimSpace(p), "base64")
		}
		if !isBase64 {
			return nil, errorf(ErrBase64, "data URL must be base64-encoded (\"data:%s;base64,...\")", mediaType)
		}
		s = strings.TrimSpace(payload)
	}
	// Line breaks (as in MIME base64) are allowed; two per 76 characters is
	// less than 3% more, so a text of more than twice the cap is too large
	// whatever it holds, and is refused before it is even scanned.
	if len(s) > 2*maxBase64Len {
		return nil, errorf(ErrTooLarge, "image is more than %d bytes (1 MiB): %d characters of base64",
			MaxImageBytes, len(s))
	}
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
	}
	s = strings.TrimRight(s, "=") // padded or not
	if s == "" {
		return nil, errorf(ErrEmpty, "image is empty")
	}
	// Unpadded, the length tells the decoded size exactly.
	if n := base64.RawStdEncoding.DecodedLen(len(s)); n > MaxImageBytes {
		return nil, errorf(ErrTooLarge, "image is %d bytes, more than %d (1 MiB)", n, MaxImageBytes)
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	data, err := enc.DecodeString(s)
	if err != nil {
		return nil, &Error{Kind: ErrBase64, Message: "image is not valid base64: " + err.Error(), Err: err}
	}
	return data, nil
}

// cutPrefixFold is strings.CutPrefix, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
