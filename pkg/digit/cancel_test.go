package digit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/digit"
)

// wantStopped checks that err is the context's error, wrapped, and no
// *digit.Error: the caller maps it, not the client.
func wantStopped(t *testing.T, x []float64, err, want error) {
	t.Helper()
	if x != nil {
		t.Errorf("an input with the error")
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want one wrapping %v", err, want)
	}
	if _, ok := errors.AsType[*digit.Error](err); ok {
		t.Errorf("error %q is a *digit.Error", err)
	}
}

// TestFromImageCancelled cancels FromImage at points spread over its work,
// decoding and preprocessing, with a context that is cancelled once it has
// been looked at a given number of times (the decoders' reader looks at it
// before every read of at most 1 KiB, Preprocess every 64 rows). FromImage
// must stop at the first look that finds it cancelled — before the next
// read, or the next 64 rows — and say so; and an uncancelled conversion
// looks at it throughout. Nothing depends on timing.
func TestFromImageCancelled(t *testing.T) {
	side := 2048
	if testing.Short() {
		side = 512
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"PNG", pngImage{w: side, h: side, depth: 8, ct: 6, ink: cross(side, side)}.encode(t)},
		{"baseline JPEG", baseline(side, side, yuv444).encode()},
		{"progressive JPEG", progressive(side, min(side, digit.MaxCostlyPixels/side), yuv444, 10).encode()},
		{"GIF", gifImage(t, side, side, cross(side, side), true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// How often an uncancelled conversion looks, decoding and in all.
			whole := &countingCtx{Context: t.Context()}
			if _, err := digit.FromImage(whole, tc.data); err != nil {
				t.Fatal(err)
			}
			decoding := &countingCtx{Context: t.Context()}
			if _, err := digit.Decode(decoding, tc.data); err != nil {
				t.Fatal(err)
			}
			dec, all := decoding.calls, whole.calls
			t.Logf("%d bytes: %d looks at the context decoding, %d preprocessing", len(tc.data), dec, all-dec)
			if dec < 3 || all-dec < 3 {
				t.Fatalf("%d looks decoding, %d preprocessing: want several of each", dec, all-dec)
			}
			for _, at := range []int{1, 2, dec / 2, dec, dec + 1, (dec + all) / 2, all} {
				ctx := &countingCtx{Context: t.Context(), cancelAt: at}
				x, err := digit.FromImage(ctx, tc.data)
				wantStopped(t, x, err, context.Canceled)
				// The look that found it cancelled is the last but, at most,
				// one (the decoder failing, Decode looks again to word it).
				if ctx.calls < at || ctx.calls > at+1 {
					t.Errorf("cancelled at look %d of %d: %d looks, want it to stop there", at, all, ctx.calls)
				}
			}
		})
	}
}

// TestCancelledContexts: a context done before the call, cancelled or past
// its deadline, stops FromImage, Decode and Preprocess at once.
func TestCancelledContexts(t *testing.T) {
	data := encodePNG(t, picture(100, 100, white, black, bar))
	img, err := digit.Decode(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		x, err := digit.FromImage(c.ctx, data)
		wantStopped(t, x, err, c.want)
		_, err = digit.Decode(c.ctx, data)
		wantStopped(t, nil, err, c.want)
		x, err = digit.Preprocess(c.ctx, img)
		wantStopped(t, x, err, c.want)
	}
	// An image refused by its structure is refused as such, whatever the
	// context: the refusal costs nothing, and tells the client more.
	_, err = digit.FromImage(cancelled, cmykBomb())
	wantError(t, err, digit.ErrTooCostly, "CMYK")
}
