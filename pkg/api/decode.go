package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mnist-go/nnserver/pkg/service"
)

// field is the last value a request gave for one field, kept until every
// field is read (a repeated key is read again: the last one counts), with
// the error its value deserves, if any.
type field[T any] struct {
	present bool
	val     T
	err     error
}

func (f *field[T]) set(v T, err error) { *f = field[T]{present: true, val: v, err: err} }

// readScalar reads one field's value as a scalar and converts it; a value
// of the wrong type is a bad value with msg.
func readScalar[T any](v *valueReader, f *field[T], convert func(jsontext.Token) (T, bool), bad error) error {
	t, ok, err := v.scalar()
	if err != nil {
		return err
	}
	var x T
	if ok {
		x, ok = convert(t)
	}
	if !ok {
		f.set(x, bad)
		return nil
	}
	f.set(x, nil)
	return nil
}

// readSeed reads the optional "seed": a whole number from 0 to MaxSeed.
func readSeed(v *valueReader, l service.Limits, f *field[*uint64]) error {
	return readScalar(v, f, func(t jsontext.Token) (*uint64, bool) {
		n, ok := asInt(t)
		if !ok || n < 0 || n > service.MaxSeed {
			return nil, false
		}
		seed := uint64(n)
		return &seed, true
	}, l.FieldError(service.FieldSeed))
}

func decodeCreate(c *gin.Context, l service.Limits) (service.CreateParams, bool) {
	p := service.DefaultCreateParams()
	var (
		sizes field[[]int]
		init  field[string]
		seed  field[*uint64]
	)
	ok := readObject(c, func(key string, v *valueReader) error {
		switch key {
		case service.FieldLayerSizes:
			// At most MaxLayers+1 sizes are kept; a longer list is counted.
			var list []int
			count, nonInt := 0, false
			isList, bad, err := v.numbers(func(_ int, n jsontext.Token) error {
				count++
				size, isInt := asInt(n)
				nonInt = nonInt || !isInt
				if len(list) <= l.MaxLayers {
					list = append(list, size)
				}
				return nil
			})
			switch {
			case err != nil:
				return err
			case !isList || bad >= 0 || nonInt:
				sizes.set(nil, l.FieldError(service.FieldLayerSizes))
			case count > l.MaxLayers:
				sizes.set(nil, l.TooManyLayers(count))
			default:
				arch, err := l.NewArchitecture(list)
				sizes.set(arch, err)
			}
			return nil
		case service.FieldInit:
			return readScalar(v, &init, asString, l.FieldError(service.FieldInit))
		case service.FieldSeed:
			return readSeed(v, l, &seed)
		}
		return v.skip()
	})
	if !ok {
		return p, false
	}
	for _, err := range []error{sizes.err, init.err, seed.err} {
		if err != nil {
			return p, invalid(c, err)
		}
	}
	if sizes.present {
		p.Arch = sizes.val
	}
	if init.present {
		p.Init = service.Init(init.val)
	}
	if seed.present {
		p.Seed = seed.val
	}
	if err := l.ValidateCreate(p); err != nil {
		return p, invalid(c, err)
	}
	return p, true
}

func decodeTrain(c *gin.Context, l service.Limits) (service.TrainParams, bool) {
	p := service.DefaultTrainParams()
	var (
		epochs, batch field[int]
		eta, lambda   field[float64]
		cost          field[string]
		seed          field[*uint64]
	)
	ok := readObject(c, func(key string, v *valueReader) error {
		switch key {
		case service.FieldEpochs:
			return readScalar(v, &epochs, asInt, l.FieldError(key))
		case service.FieldMiniBatch:
			return readScalar(v, &batch, asInt, l.FieldError(key))
		case service.FieldLearningRate:
			return readScalar(v, &eta, asFloat, l.FieldError(key))
		case service.FieldLambda:
			return readScalar(v, &lambda, asFloat, l.FieldError(key))
		case service.FieldCost:
			return readScalar(v, &cost, asString, l.FieldError(key))
		case service.FieldSeed:
			return readSeed(v, l, &seed)
		}
		return v.skip()
	})
	if !ok {
		return p, false
	}
	// In the order the checks always ran: the first bad field is named.
	for _, err := range []error{epochs.err, batch.err, eta.err, lambda.err, cost.err, seed.err} {
		if err != nil {
			return p, invalid(c, err)
		}
	}
	if epochs.present {
		p.Epochs = epochs.val
	}
	if batch.present {
		p.MiniBatch = batch.val
	}
	if eta.present {
		p.LearningRate = eta.val
	}
	if lambda.present {
		p.Lambda = lambda.val
	}
	if cost.present {
		p.Cost = service.Cost(cost.val)
	}
	if seed.present {
		p.Seed = seed.val
	}
	if err := l.ValidateTrain(p); err != nil {
		return p, invalid(c, err)
	}
	return p, true
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
