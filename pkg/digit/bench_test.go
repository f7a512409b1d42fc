package digit_test

import (
	"encoding/base64"
	"image"
	"math/rand/v2"
	"testing"

	"golang.org/x/image/draw"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// personDigit is test digit 0 as a person would give it: a
// 280×280 RGBA image, black ink on white, off-centre.
func personDigit(b *testing.B) *image.RGBA {
	px := dataset(b).Test.Image(0, nil)
	return personImage(px, draw.ApproxBiLinear, 40, rand.New(rand.NewPCG(1, 0)))
}

func benchmarkFromImage(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := digit.FromImage(b.Context(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromImagePNG times what /predict does with an image: decode a
// 280×280 RGBA PNG and preprocess it.
func BenchmarkFromImagePNG(b *testing.B) { benchmarkFromImage(b, encodePNG(b, personDigit(b))) }

// BenchmarkFromImageJPEG is the same for a JPEG of quality 75.
func BenchmarkFromImageJPEG(b *testing.B) { benchmarkFromImage(b, encodeJPEG(b, personDigit(b), 75)) }

// BenchmarkPreprocess times the preprocessing alone, on a decoded 280×280
// NRGBA image (what the PNG decoder returns for it).
func BenchmarkPreprocess(b *testing.B) {
	img, err := digit.Decode(b.Context(), encodePNG(b, personDigit(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := digit.Preprocess(b.Context(), img); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBase64Image decodes the PNG sent as a data URL.
func BenchmarkDecodeBase64Image(b *testing.B) {
	s := "data:image/png;base64," + base64.StdEncoding.EncodeToString(encodePNG(b, personDigit(b)))
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := digit.DecodeBase64Image(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPNG encodes an input as the image_data PNG.
func BenchmarkPNG(b *testing.B) {
	x := rawInput(dataset(b).Test.Image(0, nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := digit.PNG(x); err != nil {
			b.Fatal(err)
		}
	}
}
