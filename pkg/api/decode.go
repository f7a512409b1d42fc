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
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
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

func decodeCreate(c *gin.Context, l service.Limits) (service.Architecture, bool) {
	obj, ok := readObject(c)
	if !ok {
		return nil, false
	}
	raw, present := obj[service.FieldLayerSizes]
	if !present {
		return service.DefaultArchitecture(), true
	}
	list, isList := raw.([]any)
	if !isList {
		return nil, invalid(c, l.FieldError(service.FieldLayerSizes))
	}
	sizes := make([]int, len(list))
	for i, v := range list {
		n, isInt := asInt(v)
		if !isInt {
			return nil, invalid(c, l.FieldError(service.FieldLayerSizes))
		}
		sizes[i] = n
	}
	arch, err := l.NewArchitecture(sizes)
	if err != nil {
		return nil, invalid(c, err)
	}
	return arch, true
}

func decodeTrain(c *gin.Context, l service.Limits) (service.TrainParams, bool) {
	obj, ok := readObject(c)
	if !ok {
		return service.TrainParams{}, false
	}
	p := service.DefaultTrainParams()
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
	if v, present := obj[service.FieldLearningRate]; present {
		f, isNum := asFloat(v)
		if !isNum {
			return p, invalid(c, l.FieldError(service.FieldLearningRate))
		}
		p.LearningRate = f
	}
	p, err := l.NewTrainParams(p.Epochs, p.MiniBatch, p.LearningRate)
	if err != nil {
		return p, invalid(c, err)
	}
	return p, true
}

// invalid answers 400 with err's message and returns false.
func invalid(c *gin.Context, err error) bool {
	writeError(c, http.StatusBadRequest, service.ErrorMessage(err))
	return false
}
