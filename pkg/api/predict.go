package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/digit"
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
	p, err := h.svc.Predict(id, x)
	if err != nil {
		h.fail(c, err)
		return
	}
	png, err := digit.PNG(x)
	if err != nil {
		h.fail(c, &service.Error{Code: service.Internal, Message: "could not render the input", Err: err})
		return
	}
	c.JSON(http.StatusOK, predictionBody{NetworkID: id, PredictedDigit: p.Digit, Confidence: p.Confidence,
		NetworkOutput: p.Outputs, ImageData: base64.StdEncoding.EncodeToString(png)})
}

// readDigit returns the network input the request carries, or answers the
// client (400, 413, 415) and returns false.
func (h *handlers) readDigit(c *gin.Context) ([]float64, bool) {
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "image/png", "image/jpeg", "image/gif":
		if !h.decodeSlot(c) {
			return nil, false
		}
		defer h.releaseDecode()
		data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, digit.MaxImageBytes))
		if tooLarge(err) {
			writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the image is larger than %d bytes", digit.MaxImageBytes))
			return nil, false
		}
		if err != nil {
			writeError(c, http.StatusBadRequest, "could not read the image")
			return nil, false
		}
		return fromDigit(c, func() ([]float64, error) { return digit.FromImage(c.Request.Context(), data) })
	case "application/json", "":
	default:
		writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json, image/png, image/jpeg or image/gif")
		return nil, false
	}
	obj, ok := readObject(c)
	if !ok {
		return nil, false
	}
	if raw, present := obj["pixels"]; present {
		list, isList := raw.([]any)
		if !isList {
			return nil, invalid(c, errors.New("pixels must be a list of 784 numbers between 0 and 1"))
		}
		px := make([]float64, len(list))
		for i, v := range list {
			f, isNum := asFloat(v)
			if !isNum {
				return nil, invalid(c, fmt.Errorf("pixels[%d] must be a number between 0 and 1", i))
			}
			px[i] = f
		}
		return fromDigit(c, func() ([]float64, error) { return digit.FromPixels(px) })
	}
	if raw, present := obj["image"]; present {
		s, isStr := raw.(string)
		if !isStr {
			return nil, invalid(c, errors.New("image must be a base64 PNG or JPEG, or a data: URL"))
		}
		if !h.decodeSlot(c) {
			return nil, false
		}
		defer h.releaseDecode()
		return fromDigit(c, func() ([]float64, error) {
			data, err := digit.DecodeBase64Image(s)
			if err != nil {
				return nil, err
			}
			return digit.FromImage(c.Request.Context(), data)
		})
	}
	return nil, invalid(c, errors.New(`the body needs "pixels" (784 numbers between 0 and 1) or "image" (a base64 PNG or JPEG)`))
}

// fromDigit runs one of pkg/digit's conversions, answering its errors with
// 400 and the message naming the problem.
func fromDigit(c *gin.Context, convert func() ([]float64, error)) ([]float64, bool) {
	x, err := convert()
	if err == nil {
		return x, true
	}
	if de, ok := errors.AsType[*digit.Error](err); ok {
		return nil, invalid(c, errors.New(de.Message))
	}
	writeError(c, http.StatusBadRequest, "the digit could not be read")
	return nil, false
}

// maxDecodes bounds the images decoded at once: a small file may declare
// 4096×4096 pixels, which takes about 80 MB and half a second of CPU to
// decode and scale. Beyond it, 503 with Retry-After.
const maxDecodes = 2

// decodeSlot takes one of the maxDecodes slots, or answers 503 and returns
// false.
func (h *handlers) decodeSlot(c *gin.Context) bool {
	select {
	case h.decodes <- struct{}{}:
		return true
	default:
		c.Header("Retry-After", "1")
		writeError(c, http.StatusServiceUnavailable, "too many images are being read at once; try again shortly")
		return false
	}
}

func (h *handlers) releaseDecode() { <-h.decodes }
