package service

import (
	"encoding/base64"
	"math/rand/v2"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/render"
)

// Example is a test image with what the network made of it.
type Example struct {
	NetworkID      string      `json:"network_id"`
	ExampleIndex   int         `json:"example_index"`
	PredictedDigit int         `json:"predicted_digit"`
	ActualDigit    int         `json:"actual_digit"`
	ImageData      string      `json:"image_data"` // base64 PNG
	OutputWeights  [][]float64 `json:"output_weights"`
	NetworkOutput  []float64   `json:"network_output"`
}

// predictions caches a snapshot's predicted digit for every test image.
type predictions struct {
	net  *network.Network
	pred []int
}

// probes is how many random test images are tried before scanning them all.
const probes = 64

// Example picks a random test image that the network classifies correctly
// (correct) or incorrectly (!correct), as it stands after its last finished
// epoch.
func (s *Service) Example(networkID string, correct bool) (Example, error) {
	e, err := s.lookup(networkID)
	if err != nil {
		return Example{}, err
	}
	ds, err := s.data()
	if err != nil {
		return Example{}, &Error{Code: Internal, Message: "the MNIST data set is not available", Err: err}
	}
	net := e.state.Load().net
	pred, err := e.predictionsFor(net, ds.Test)
	if err != nil {
		return Example{}, &Error{Code: Internal, Message: "could not run the network", Err: err}
	}
	test := ds.Test
	wanted := func(i int) bool { return (pred[i] == test.Label(i)) == correct }

	idx := -1
	for range probes {
		if i := rand.IntN(len(pred)); wanted(i) {
			idx = i
			break
		}
	}
	if idx < 0 {
		var matches []int
		for i := range pred {
			if wanted(i) {
				matches = append(matches, i)
			}
		}
		if len(matches) == 0 {
			kind := "successful"
			if !correct {
				kind = "unsuccessful"
			}
			return Example{}, Errorf(NotFound, "No %s example found after multiple attempts", kind)
		}
		idx = matches[rand.IntN(len(matches))]
	}

	pixels := test.Image(idx, nil)
	x := make([]float64, len(pixels))
	for i, v := range pixels {
		x[i] = float64(v) / 255
	}
	out, err := net.FeedForward(x)
	if err != nil {
		return Example{}, &Error{Code: Internal, Message: "could not run the network", Err: err}
	}
	png, err := render.DigitPNG(pixels, pred[idx], test.Label(idx))
	if err != nil {
		return Example{}, &Error{Code: Internal, Message: "could not render the image", Err: err}
	}
	last := net.Weights(net.NumLayers() - 1)
	rows, _ := last.Dims()
	weights := make([][]float64, rows)
	for r := range rows {
		weights[r] = last.RawRowView(r)
	}
	return Example{
		NetworkID: networkID, ExampleIndex: idx, PredictedDigit: pred[idx], ActualDigit: test.Label(idx),
		ImageData: base64.StdEncoding.EncodeToString(png), OutputWeights: weights, NetworkOutput: out,
	}, nil
}

// predictionsFor returns net's predictions on test, computing them once per
// snapshot: concurrent requests wait for the one computation rather than
// each classifying all 10,000 images.
func (e *entry) predictionsFor(net *network.Network, test *mnist.Set) ([]int, error) {
	if p := e.preds.Load(); p != nil && p.net == net {
		return p.pred, nil
	}
	e.predMu.Lock()
	defer e.predMu.Unlock()
	if p := e.preds.Load(); p != nil && p.net == net {
		return p.pred, nil
	}
	pred, err := net.Classify(test)
	if err != nil {
		return nil, err
	}
	e.preds.Store(&predictions{net: net, pred: pred})
	return pred, nil
}
