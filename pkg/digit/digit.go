// Package digit turns a digit given by a user — 784 pixel values, or a PNG,
// JPEG or GIF image of any size and colours — into the 784 inputs of a
// network trained on MNIST, the way MNIST itself was made: "The original black
// and white images from NIST were size normalized to fit in a 20x20 pixel box
// while preserving their aspect ratio. The resulting images contain grey
// levels as a result of the anti-aliasing technique used by the normalization
// algorithm. The images were centered in a 28x28 image by computing the center
// of mass of the pixels, and translating the image so as to position this
// point at the center of the 28x28 field."
//
// An input is 784 float64 values, row-major 28×28, 0 for background and 1 for
// ink (MNIST's bytes divided by 255).
//
// Every error caused by the input is an *Error, whose message is meant for
// the client (an API answers 400 with it) and whose Kind is one of the Err*
// sentinels, so errors.Is(err, ErrBlank) works. The package knows nothing of
// HTTP. All functions are safe for concurrent use.
package digit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"sync"
)

// Geometry of a network input.
const (
	Side   = 28          // width and height of an input image
	Pixels = Side * Side // number of inputs, 784
	Box    = 20          // the longer side of the digit itself, as in MNIST
)

// Caps on an image: a larger one is refused with ErrTooLarge.
const (
	// MaxImageBytes is the largest encoded image accepted (1 MiB), after
	// base64 decoding.
	MaxImageBytes = 1 << 20
	// MaxImageSide is the largest width or height accepted, in pixels. It is
	// checked on the image header, before anything is decoded.
	MaxImageSide = 4096
)

// The kinds of bad input. Every error this package returns for bad input is
// an *Error whose Kind is one of these.
var (
	ErrPixels   = errors.New("invalid pixels")               // FromPixels, PNG: wrong count or value
	ErrEmpty    = errors.New("image is empty")               // no bytes, or no pixels
	ErrTooLarge = errors.New("image is too large")           // bytes or dimensions over the caps
	ErrBase64   = errors.New("image is not valid base64")    // DecodeBase64Image: bad base64 or data URL
	ErrFormat   = errors.New("not a PNG, JPEG or GIF image") // unknown format
	ErrCorrupt  = errors.New("image could not be decoded")   // truncated or invalid PNG/JPEG/GIF data
	ErrBlank    = errors.New("image is blank: no ink found") // decoded, but nothing is drawn on it
	// ErrTooCostly: the image's structure would cost more memory or work
	// to decode than allowed: a progressive JPEG, 16-bit or interlaced PNG
	// of more than MaxCostlyPixels, a progressive JPEG of more than
	// MaxProgressiveScans scans, a JPEG of more than MaxJPEGComponents
	// colour components, or an estimate above MaxDecodeBytes (see Inspect).
	ErrTooCostly = errors.New("image is too costly to decode")
)

// Error is a problem with the input. Message says what is wrong in words fit
// for the client; Kind is one of the Err* sentinels; Err, if not nil, is the
// underlying cause (a decoder's error, for logs).
type Error struct {
	Kind    error
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind and the cause, so that errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// FromPixels checks that px is a network input — exactly 784 finite numbers
// between 0 (background) and 1 (ink), row-major 28×28 — and returns a copy of
// it, unchanged: no cropping, scaling or centring. Errors are of kind
// ErrPixels and name the first bad value.
func FromPixels(px []float64) ([]float64, error) {
	if err := checkPixels(px); err != nil {
		return nil, err
	}
	return append([]float64(nil), px...), nil
}

func checkPixels(px []float64) error {
	if len(px) != Pixels {
		return errorf(ErrPixels, "pixels must be %d numbers, got %d", Pixels, len(px))
	}
	for i, v := range px {
		if !(v >= 0 && v <= 1) { // also false for NaN
			return errorf(ErrPixels, "pixels[%d] is %v, want a number between 0 and 1", i, v)
		}
	}
	return nil
}

// FromImage decodes a PNG, JPEG or GIF image (at most MaxImageBytes, at most
// MaxImageSide pixels a side, within the bounds on costly images) and turns
// it into a network input with Preprocess. It is Decode followed by
// Preprocess: Inspect(data) tells what it costs at most, and refuses what
// it would refuse, without decoding. Errors caused by the image are *Error;
// once ctx is done, decoding and preprocessing stop promptly with an error
// wrapping ctx.Err().
func FromImage(ctx context.Context, data []byte) ([]float64, error) {
	img, err := Decode(ctx, data)
	if err != nil {
		return nil, err
	}
	return Preprocess(ctx, img)
}

// PNG encodes a network input as the network sees it: a 28×28 8-bit
// greyscale PNG drawn like MNIST and like the service's example images, ink
// white on a black background (value v becomes grey level round(255·v)).
// x must satisfy FromPixels' rules; otherwise the error is of kind ErrPixels.
func PNG(x []float64) ([]byte, error) {
	if err := checkPixels(x); err != nil {
		return nil, err
	}
	img := image.NewGray(image.Rect(0, 0, Side, Side))
	for i, v := range x {
		img.Pix[i] = uint8(math.Round(v * 255))
	}
	var buf bytes.Buffer
	buf.Grow(1024)
	if err := pngEncoder.Encode(&buf, img); err != nil { // cannot fail on a bytes.Buffer
		return nil, fmt.Errorf("digit: encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// pngEncoder reuses its compressors (about 800 KB each) across calls.
var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &encoderBuffers{}}

type encoderBuffers struct{ pool sync.Pool }

func (p *encoderBuffers) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b // nil at first: the encoder makes one
}

func (p *encoderBuffers) Put(b *png.EncoderBuffer) { p.pool.Put(b) }
