package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mnist-go/nnserver/pkg/digit"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/service"
)

type predictionBody struct {
	NetworkID      string    `json:"network_id"`
	PredictedDigit int       `json:"predicted_digit"`
	Confidence     float64   `json:"confidence"`
	NetworkOutput  []float64 `json:"network_output"`
	ImageData      string    `json:"image_data"` // base64 PNG of the 28×28 input as the network saw it
}

// predict classifies a digit the client gives: JSON {"pixels": [784
// numbers]} or {"image": "<base64 or data: URL>"}, or the raw bytes of a PNG
// or JPEG. Images are made into MNIST-style inputs (pkg/digit).
func (h *handlers) predict(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	x, ok := h.readDigit(c)
	if !ok {
		return
	}
	p, err := h.svc.Predict(c.Request.Context(), id, x)
	if err != nil {
		h.fail(c, err)
		return
	}
	png, err := digit.PNG(x)
	if err != nil {
		h.fail(c, &service.Error{Code: service.Internal, Message: "could not render the input", Err: err})
		return
	}
	h.writeJSON(c, http.StatusOK, predictionBody{NetworkID: id, PredictedDigit: p.Digit, Confidence: p.Confidence,
		NetworkOutput: p.Outputs, ImageData: base64.StdEncoding.EncodeToString(png)})
}

// readDigit returns the network input the request carries, or answers the
// client (400, 413, 415, 503) and returns false. The body is read first,
// within the memory budget; only then is one of the decode slots taken for
// an image, so that a client sending slowly holds no slot.
func (h *handlers) readDigit(c *gin.Context) ([]float64, bool) {
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "image/png", "image/jpeg", "image/gif":
		release, ok := h.meter(c, rawReadFactor, false)
		if !ok {
			return nil, false
		}
		defer release()
		body, err := readChunks(http.MaxBytesReader(c.Writer, c.Request.Body, digit.MaxImageBytes), digit.MaxImageBytes)
		switch {
		case tooLarge(err) || errors.Is(err, errTooLong):
			writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the image is larger than %d bytes", digit.MaxImageBytes))
			return nil, false
		case isBusy(err):
			writeBusy(c, err)
			return nil, false
		case err != nil:
			writeError(c, http.StatusBadRequest, "could not read the image")
			return nil, false
		}
		return h.decodeImage(c, body.bytes())
	case "application/json", "":
	default:
		writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json, image/png, image/jpeg or image/gif")
		return nil, false
	}
	release, ok := h.meter(c, jsonReadFactor, true)
	if !ok {
		return nil, false
	}
	defer release()
	var (
		pixels field[[]float64]
		image  field[string]
	)
	ok = readObject(c, func(key string, v *valueReader) error {
		switch key {
		case "pixels":
			// At most 784 values are kept; a longer list is counted.
			px := make([]float64, 0, mnist.Pixels)
			count := 0
			isList, bad, err := v.numbers(func(_ int, n jsontext.Token) error {
				count++
				if len(px) < mnist.Pixels {
					f, _ := asFloat(n)
					px = append(px, f)
				}
				return nil
			})
			switch {
			case err != nil:
				return err
			case !isList:
				pixels.set(nil, errors.New("pixels must be a list of 784 numbers between 0 and 1"))
			case bad >= 0:
				pixels.set(nil, fmt.Errorf("pixels[%d] must be a number between 0 and 1", bad))
			case count != mnist.Pixels:
				pixels.set(nil, fmt.Errorf("pixels must be %d numbers, got %d", mnist.Pixels, count))
			default:
				pixels.set(px, nil)
			}
			return nil
		case "image":
			return readScalar(v, &image, asString, errors.New("image must be a base64 PNG or JPEG, or a data: URL"))
		}
		return v.skip()
	})
	if !ok {
		return nil, false
	}
	switch {
	case pixels.present:
		if pixels.err != nil {
			return nil, invalid(c, pixels.err)
		}
		return fromDigit(c, func() ([]float64, error) { return digit.FromPixels(pixels.val) })
	case image.present:
		if image.err != nil {
			return nil, invalid(c, image.err)
		}
		data, err := digit.DecodeBase64Image(image.val)
		if err != nil {
			return fromDigit(c, func() ([]float64, error) { return nil, err })
		}
		return h.decodeImage(c, data)
	}
	return nil, invalid(c, errors.New(`the body needs "pixels" (784 numbers between 0 and 1) or "image" (a base64 PNG or JPEG)`))
}

// decodeTimeout bounds one image decode (the largest image the bounds
// allow decodes in well under a second).
const decodeTimeout = 10 * time.Second

// decodeImage makes an image into a network input: its cost is read from
// its headers (pkg/digit refuses what would cost too much), reserved from
// the memory budget, and it is decoded in one of the decode slots, until
// its deadline, the client leaving, or the server shutting down.
func (h *handlers) decodeImage(c *gin.Context, data []byte) ([]float64, bool) {
	cost, err := digit.Inspect(data)
	if err != nil {
		return fromDigit(c, func() ([]float64, error) { return nil, err })
	}
	hold, err := h.budget.Reserve(c.Request.Context(), cost.Bytes)
	if err != nil {
		writeBusy(c, err)
		return nil, false
	}
	defer hold.Release()
	release, err := h.cpu.Take(c.Request.Context())
	if err != nil {
		c.Header("Retry-After", "1")
		writeError(c, http.StatusServiceUnavailable, "too many images are being read at once; try again shortly")
		return nil, false
	}
	defer release()
	ctx, cancel := context.WithTimeout(c.Request.Context(), decodeTimeout)
	defer cancel()
	// AfterFunc runs cancel in a goroutine of its own: a decode that starts
	// once shutdown has begun must not race it.
	if h.stopping.Err() != nil {
		cancel()
	}
	stop := context.AfterFunc(h.stopping, cancel)
	defer stop()
	return fromDigit(c, func() ([]float64, error) { return digit.FromImage(ctx, data) })
}

// fromDigit runs one of pkg/digit's conversions, answering its errors with
// 400 and the message naming the problem; a decode stopped by its deadline
// or the server shutting down is a 503.
func fromDigit(c *gin.Context, convert func() ([]float64, error)) ([]float64, bool) {
	x, err := convert()
	if err == nil {
		return x, true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		c.Header("Retry-After", "2")
		writeError(c, http.StatusServiceUnavailable, "the image could not be read in time; try again shortly")
		return nil, false
	}
	if de, ok := errors.AsType[*digit.Error](err); ok {
		return nil, invalid(c, errors.New(de.Message))
	}
	writeError(c, http.StatusBadRequest, "the digit could not be read")
	return nil, false
}
