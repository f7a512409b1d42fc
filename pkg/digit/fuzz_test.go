package digit_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mnist-go/nnserver/pkg/digit"
)

var kinds = []error{digit.ErrPixels, digit.ErrEmpty, digit.ErrTooLarge, digit.ErrBase64,
	digit.ErrFormat, digit.ErrCorrupt, digit.ErrBlank, digit.ErrTooCostly}

// checkRefusal checks that err is an *digit.Error of one of the kinds, with
// a message.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	e, ok := errors.AsType[*digit.Error](err)
	if !ok {
		t.Fatalf("error %q is a %T, want a *digit.Error", err, err)
	}
	for _, k := range kinds {
		if e.Kind == k {
			if e.Message == "" {
				t.Fatalf("error of kind %v has no message", k)
			}
			return
		}
	}
	t.Fatalf("error %q has kind %v, not one of the package's", err, e.Kind)
}

// FuzzFromImage: whatever the bytes, FromImage returns a valid input or an
// *digit.Error, and does not panic. The seed corpus, testdata/fuzz/
// FuzzFromImage, has small PNGs (grey, RGB, 16-bit, palette, transparent,
// 1×1, truncated), JPEGs (colour, grey), a GIF, and 20000×20000 headers of
// all three.
func FuzzFromImage(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("GIF89a"))
	f.Add([]byte("\xff\xd8\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := digit.FromImage(t.Context(), data)
		if err != nil {
			if x != nil {
				t.Fatal("an input with an error")
			}
			checkRefusal(t, err)
			return
		}
		if len(x) != digit.Pixels {
			t.Fatalf("%d values", len(x))
		}
		top := 0.0
		for i, v := range x {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("x[%d] = %v", i, v)
			}
			top = max(top, v)
		}
		if top != 1 {
			t.Fatalf("strongest pixel %v, want 1", top)
		}
		if _, err := digit.PNG(x); err != nil {
			t.Fatalf("PNG of an input FromImage made: %v", err)
		}
	})
}

// FuzzDecodeBase64Image: whatever the text, DecodeBase64Image returns at
// most MaxImageBytes or an *digit.Error, and what it returns is what the
// text encodes.
func FuzzDecodeBase64Image(f *testing.F) {
	for _, s := range []string{"", "iVBORw0KGgo=", "iVBORw0KGgo", "-_-_", "data:image/png;base64,iVBORw0KGgo=",
		"data:image/jpeg;base64,/9j/", "data:text/plain,hi", "data:image/png;base64", "QQ\r\nQQ==", "===="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, err := digit.DecodeBase64Image(s)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(data) == 0 || len(data) > digit.MaxImageBytes {
			t.Fatalf("%d bytes", len(data))
		}
		// What it decoded, encoded again, is the text's payload (up to the
		// alphabet, the padding and spaces): decoding that again agrees.
		again, err := digit.DecodeBase64Image(base64.StdEncoding.EncodeToString(data))
		if err != nil || string(again) != string(data) {
			t.Fatalf("re-encoded: %v, %q != %q", err, again, data)
		}
	})
}
