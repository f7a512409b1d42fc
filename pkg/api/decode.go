package api

import (
	"errors"
	"github.com/mnist-go/nnserver/pkg/deep"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mnist-go/nnserver/pkg/modelfile"
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
		sizes       field[[]int]
		layers      field[[]deep.Layer]
		init        field[string]
		seed        field[*uint64]
		name, notes field[string]
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
		case service.FieldLayers:
			return readLayers(v, l, &layers)
		case service.FieldInit:
			return readScalar(v, &init, asString, l.FieldError(service.FieldInit))
		case service.FieldSeed:
			return readSeed(v, l, &seed)
		case service.FieldName:
			return readText(v, &name, l.CheckName, l.FieldError(key))
		case service.FieldNotes:
			return readText(v, &notes, l.CheckNotes, l.FieldError(key))
		}
		return v.skip()
	})
	if !ok {
		return p, false
	}
	if sizes.present && layers.present {
		return p, invalid(c, service.Errorf(service.Invalid, "give layer_sizes or layers, not both"))
	}
	for _, err := range []error{sizes.err, layers.err, init.err, seed.err, name.err, notes.err} {
		if err != nil {
			return p, invalid(c, err)
		}
	}
	if sizes.present {
		p.Arch = sizes.val
	}
	if layers.present {
		p.Layers = layers.val
	}
	if init.present {
		p.Init = service.Init(init.val)
	}
	if seed.present {
		p.Seed = seed.val
	}
	p.Name, p.Notes = name.val, notes.val
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
		stopAfter     field[int]
		restoreBest   field[bool]
		expand        field[bool]
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
		case service.FieldStopAfter:
			return readScalar(v, &stopAfter, func(t jsontext.Token) (int, bool) {
				n, ok := asInt(t)
				return n, ok && n >= 1 && n <= l.MaxEpochs
			}, l.FieldError(key))
		case service.FieldRestoreBest:
			return readScalar(v, &restoreBest, asBool, l.FieldError(key))
		case service.FieldExpand:
			return readScalar(v, &expand, asBool, l.FieldError(key))
		}
		return v.skip()
	})
	if !ok {
		return p, false
	}
	// In the order the checks always ran: the first bad field is named.
	for _, err := range []error{epochs.err, batch.err, eta.err, lambda.err, cost.err, seed.err, stopAfter.err, restoreBest.err, expand.err} {
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
	p.StopAfterNoImprovement, p.RestoreBest = stopAfter.val, restoreBest.val
	p.Expand = expand.val
	if err := l.ValidateTrain(p); err != nil {
		return p, invalid(c, err)
	}
	// What the request leaves out depends on the network's kind: the
	// service fills it (TrainParams.ForArch).
	if !eta.present {
		p.LearningRate = 0
	}
	if !cost.present {
		p.Cost = ""
	}
	return p, true
}

// readText reads a string field that check accepts; anything else is bad.
func readText(v *valueReader, f *field[string], check func(string) error, bad error) error {
	return readScalar(v, f, func(t jsontext.Token) (string, bool) {
		s, ok := asString(t)
		return s, ok && check(s) == nil
	}, bad)
}

// decodeLabel reads PATCH /api/networks/{id}: name, notes or both.
func decodeLabel(c *gin.Context, l service.Limits) (name, notes *string, ok bool) {
	var nameF, notesF field[string]
	ok = readObject(c, func(key string, v *valueReader) error {
		switch key {
		case service.FieldName:
			return readText(v, &nameF, l.CheckName, l.FieldError(key))
		case service.FieldNotes:
			return readText(v, &notesF, l.CheckNotes, l.FieldError(key))
		}
		return v.skip()
	})
	if !ok {
		return nil, nil, false
	}
	for _, err := range []error{nameF.err, notesF.err} {
		if err != nil {
			return nil, nil, invalid(c, err)
		}
	}
	if !nameF.present && !notesF.present {
		writeError(c, http.StatusBadRequest, `the body needs "name", "notes" or both`)
		return nil, nil, false
	}
	if nameF.present {
		name = &nameF.val
	}
	if notesF.present {
		notes = &notesF.val
	}
	return name, notes, true
}

// decodeRestore reads POST /api/networks/{id}/restore: {"epoch": N} or
// {"best": true}, one of them.
func decodeRestore(c *gin.Context, l service.Limits) (epoch int, best, ok bool) {
	var epochF field[int]
	var bestF field[bool]
	ok = readObject(c, func(key string, v *valueReader) error {
		switch key {
		case service.FieldEpoch:
			return readScalar(v, &epochF, func(t jsontext.Token) (int, bool) {
				n, ok := asInt(t)
				return n, ok && n >= 1 && n <= modelfile.MaxHistory
			}, l.FieldError(key))
		case service.FieldBest:
			return readScalar(v, &bestF, func(t jsontext.Token) (bool, bool) {
				b, ok := asBool(t)
				return b, ok && b
			}, l.FieldError(key))
		}
		return v.skip()
	})
	if !ok {
		return 0, false, false
	}
	for _, err := range []error{epochF.err, bestF.err} {
		if err != nil {
			return 0, false, invalid(c, err)
		}
	}
	if epochF.present == bestF.present {
		writeError(c, http.StatusBadRequest, `the body needs "epoch" (a snapshot's epoch) or "best": true, not both`)
		return 0, false, false
	}
	return epochF.val, bestF.present, true
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
