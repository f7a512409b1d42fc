package digit_test

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// wantError checks that err is an *digit.Error of the kind, whose message
// contains msg.
func wantError(t *testing.T, err error, kind error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q (%v)", msg, kind)
	}
	e, ok := errors.AsType[*digit.Error](err)
	if !ok {
		t.Fatalf("error %q is a %T, want a *digit.Error", err, err)
	}
	if !errors.Is(err, kind) || e.Kind != kind {
		t.Errorf("error %q is of kind %v, want %v", err, e.Kind, kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q, want it to contain %q", err, msg)
	}
}

func TestFromPixels(t *testing.T) {
	ramp := make([]float64, digit.Pixels)
	for i := range ramp {
		ramp[i] = float64(i) / (digit.Pixels - 1)
	}
	with := func(i int, v float64) []float64 {
		px := make([]float64, digit.Pixels)
		px[i] = v
		return px
	}
	for _, tc := range []struct {
		name string
		px   []float64
		msg  string // "" for success
	}{
		{"ramp from 0 to 1", ramp, ""},
		{"all background", make([]float64, digit.Pixels), ""},
		{"one short", make([]float64, 783), "pixels must be 784 numbers, got 783"},
		{"one too many", make([]float64, 785), "pixels must be 784 numbers, got 785"},
		{"nil", nil, "pixels must be 784 numbers, got 0"},
		{"above 1", with(12, 1.5), "pixels[12] is 1.5, want a number between 0 and 1"},
		{"below 0", with(783, -0.25), "pixels[783] is -0.25, want a number between 0 and 1"},
		{"NaN", with(0, math.NaN()), "pixels[0] is NaN, want a number between 0 and 1"},
		{"infinite", with(5, math.Inf(1)), "pixels[5] is +Inf, want a number between 0 and 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := digit.FromPixels(tc.px)
			if tc.msg != "" {
				wantError(t, err, digit.ErrPixels, tc.msg)
				if err.Error() != tc.msg {
					t.Errorf("message %q, want exactly %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(x) != digit.Pixels {
				t.Fatalf("%d values", len(x))
			}
			for i := range x {
				if x[i] != tc.px[i] {
					t.Fatalf("x[%d] = %v, want %v: used as is", i, x[i], tc.px[i])
				}
			}
			tc.px[0] = 0.5
			if x[0] == 0.5 && &x[0] == &tc.px[0] {
				t.Error("FromPixels returned its argument, want a copy")
			}
		})
	}
}

func TestPNG(t *testing.T) {
	x := make([]float64, digit.Pixels)
	for i := range x {
		x[i] = float64(i%256) / 255
	}
	x[1] = 0.5 // 127.5 rounds to 128
	b, err := digit.PNG(x)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Rect != image.Rect(0, 0, 28, 28) {
		t.Fatalf("decoded a %T of %v, want a 28×28 *image.Gray", img, img.Bounds())
	}
	for i, v := range x {
		want := uint8(math.Round(255 * v))
		if got := g.Pix[(i/28)*g.Stride+i%28]; got != want {
			t.Fatalf("pixel %d = %d, want %d: ink white on black", i, got, want)
		}
	}
	if g.Pix[1] != 128 {
		t.Errorf("0.5 became %d, want 128", g.Pix[1])
	}

	_, err = digit.PNG(x[:100])
	wantError(t, err, digit.ErrPixels, "pixels must be 784 numbers, got 100")
	x[3] = math.NaN()
	_, err = digit.PNG(x)
	wantError(t, err, digit.ErrPixels, "pixels[3] is NaN")
}

func TestDecodeBase64Image(t *testing.T) {
	// Bytes whose base64 uses both alphabet-specific characters and padding.
	data := []byte{0xfb, 0xff, 0xbf, 0x3e, 0x00, 0x01, 0x02}
	const std = "+/+/PgABAg=="
	const url = "-_-_PgABAg=="
	big := strings.Repeat("A", 3*digit.MaxImageBytes)               // 2.25 MiB decoded
	over := strings.Repeat("AAAA", digit.MaxImageBytes/3) + "AAA"   // 1048575 + 2 bytes
	exact := strings.Repeat("AAAA", digit.MaxImageBytes/3) + "AA==" // 1048575 + 1 bytes
	for _, tc := range []struct {
		name string
		in   string
		kind error  // nil for success
		msg  string // part of the message, for errors
	}{
		{"standard, padded", std, nil, ""},
		{"standard, unpadded", strings.TrimRight(std, "="), nil, ""},
		{"URL-safe, padded", url, nil, ""},
		{"URL-safe, unpadded", strings.TrimRight(url, "="), nil, ""},
		{"surrounding space", " \n" + std + "\n", nil, ""},
		{"MIME line breaks", std[:4] + "\r\n" + std[4:8] + "\n" + std[8:], nil, ""},
		{"PNG data URL", "data:image/png;base64," + std, nil, ""},
		{"JPEG data URL", "data:image/jpeg;base64," + std, nil, ""},
		{"GIF data URL, URL-safe", "data:image/gif;base64," + url, nil, ""},
		{"data URL, any case, with a charset", "DATA:Image/PNG;charset=utf-8;BASE64," + std, nil, ""},

		{"empty", "", digit.ErrEmpty, "image is empty"},
		{"only space", " \n\t", digit.ErrEmpty, "image is empty"},
		{"empty data URL", "data:image/png;base64,", digit.ErrEmpty, "image is empty"},
		{"only padding", "====", digit.ErrEmpty, "image is empty"},
		{"not base64", "hello, world!", digit.ErrBase64, "image is not valid base64: illegal base64 data at input byte 5"},
		{"mixed alphabets", "+/-_PgABAg", digit.ErrBase64, "image is not valid base64"},
		{"a lone character", "QUJDR", digit.ErrBase64, "image is not valid base64"},
		{"data URL of text", "data:text/plain;base64," + std, digit.ErrBase64, `data URL has media type "text/plain", want image/png, image/jpeg or image/gif`},
		{"data URL without media type", "data:;base64," + std, digit.ErrBase64, "data URL has media type \"none\""},
		{"data URL not in base64", "data:image/png,%89PNG", digit.ErrBase64, "data URL must be base64-encoded"},
		{"data URL without a comma", "data:image/png;base64", digit.ErrBase64, "data URL has no comma"},
		{"twice the cap", big, digit.ErrTooLarge, "image is more than 1048576 bytes (1 MiB): 3145728 characters of base64"},
		{"one byte over the cap", over + "=", digit.ErrTooLarge, "image is 1048577 bytes, more than 1048576 (1 MiB)"},
		{"one byte over the cap, unpadded", over, digit.ErrTooLarge, "image is 1048577 bytes, more than 1048576 (1 MiB)"},
		{"one byte over the cap, with line breaks", over[:76] + "\r\n" + over[76:], digit.ErrTooLarge, "image is 1048577 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := digit.DecodeBase64Image(tc.in)
			if tc.kind != nil {
				wantError(t, err, tc.kind, tc.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("decoded % x, want % x", got, data)
			}
		})
	}

	// The cap itself is allowed.
	got, err := digit.DecodeBase64Image(exact)
	if err != nil || len(got) != digit.MaxImageBytes {
		t.Errorf("%d bytes: got %d bytes, %v; want them accepted", digit.MaxImageBytes, len(got), err)
	}
}
