package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/service"
)

// readObject reads a request body that must be a JSON object, or empty. It
// answers the client itself and returns ok=false when the body is too large
// (413), of another content type (415), not JSON, not an object or followed
// by more data (400). An empty body gives an empty object: the defaults.
func readObject(c *gin.Context) (obj map[string]any, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if tooLarge(err) {
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
		return nil, false
	}
	if err != nil {
		writeError(c, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, true
	}
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return nil, false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		writeError(c, http.StatusBadRequest, "request body is not valid JSON")
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(c, http.StatusBadRequest, "request body has data after the JSON value")
		return nil, false
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		writeError(c, http.StatusBadRequest, "request body must be a JSON object")
		return nil, false
	}
	return obj, true
}

// asInt converts a JSON value to an int if it is a whole number (5 or
// 5.0). Numbers beyond the int range saturate, so that range checks
// reject them.
func asInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return int(i), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, false
	}
	return int(max(min(f, math.MaxInt64/2), math.MinInt64/2)), true
}

// asFloat converts a JSON number to a float64; a number too large for a
// float64 becomes ±Inf, which range checks reject.
func asFloat(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

func decodeCreate(c *gin.Context, l service.Limits) (service.CreateParams, bool) {
	p := service.DefaultCreateParams()
	obj, ok := readObject(c)
	if !ok {
		return p, false
	}
	if raw, present := obj[service.FieldLayerSizes]; present {
		list, isList := raw.([]any)
		if !isList {
			return p, invalid(c, l.FieldError(service.FieldLayerSizes))
		}
		sizes := make([]int, len(list))
		for i, v := range list {
			n, isInt := asInt(v)
			if !isInt {
				return p, invalid(c, l.FieldError(service.FieldLayerSizes))
			}
			sizes[i] = n
		}
		arch, err := l.NewArchitecture(sizes)
		if err != nil {
			return p, invalid(c, err)
		}
		p.Arch = arch
	}
	if v, present := obj[service.FieldInit]; present {
		s, isStr := v.(string)
		if !isStr {
			return p, invalid(c, l.FieldError(service.FieldInit))
		}
		p.Init = service.Init(s)
	}
	if !decodeSeed(c, l, obj, &p.Seed) {
		return p, false
	}
	if err := l.ValidateCreate(p); err != nil {
		return p, invalid(c, err)
	}
	return p, true
}

func decodeTrain(c *gin.Context, l service.Limits) (service.TrainParams, bool) {
	p := service.DefaultTrainParams()
	obj, ok := readObject(c)
	if !ok {
		return p, false
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{service.FieldEpochs, &p.Epochs}, {service.FieldMiniBatch, &p.MiniBatch}} {
		if v, present := obj[f.name]; present {
			n, isInt := asInt(v)
			if !isInt {
				return p, invalid(c, l.FieldError(f.name))
			}
			*f.dst = n
		}
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{service.FieldLearningRate, &p.LearningRate}, {service.FieldLambda, &p.Lambda}} {
		if v, present := obj[f.name]; present {
			x, isNum := asFloat(v)
			if !isNum {
				return p, invalid(c, l.FieldError(f.name))
			}
			*f.dst = x
		}
	}
	if v, present := obj[service.FieldCost]; present {
		s, isStr := v.(string)
		if !isStr {
			return p, invalid(c, l.FieldError(service.FieldCost))
		}
		p.Cost = service.Cost(s)
	}
	if !decodeSeed(c, l, obj, &p.Seed) {
		return p, false
	}
	if err := l.ValidateTrain(p); err != nil {
		return p, invalid(c, err)
	}
	return p, true
}

// decodeSeed reads the optional "seed": a whole number from 0 to MaxSeed.
func decodeSeed(c *gin.Context, l service.Limits, obj map[string]any, dst **uint64) bool {
	v, present := obj[service.FieldSeed]
	if !present {
		return true
	}
	n, isInt := asInt(v)
	if !isInt || n < 0 || n > service.MaxSeed {
		return invalid(c, l.FieldError(service.FieldSeed))
	}
	seed := uint64(n)
	*dst = &seed
	return true
}

// invalid answers 400 with err's message and returns false. err is a
// *service.Error or an error whose message is meant for the client.
func invalid(c *gin.Context, err error) bool {
	msg := err.Error()
	if _, ok := errors.AsType[*service.Error](err); ok {
		msg = service.ErrorMessage(err)
	}
	writeError(c, http.StatusBadRequest, msg)
	return false
}
