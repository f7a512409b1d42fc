package service

import (
	"context"
	"errors"
	"github.com/mnist-go/nnserver/pkg/model"
	"math"
	"math/rand/v2"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/mnist"
)

// analysis is what one snapshot of a network makes of the 10,000 test
// images, computed once per snapshot and shared by every request about it.
type analysis struct {
	st   *state
	pred []uint8   // predicted digit of every test image
	conf []float32 // its confidence: the top output over the sum of the outputs

	evalOnce sync.Once
	eval     Evaluation // derived from pred and conf on first use
}

// analysisCache holds an entry's latest analysis and the computation of a
// newer one under way, so concurrent requests about a new snapshot wait for
// one computation rather than each classifying 10,000 images.
type analysisCache struct {
	mu     sync.Mutex
	latest *analysis
	flight *analysisFlight // at most one per network at a time
}

type analysisFlight struct {
	done chan struct{}
	err  error
}

// analysisBlock is how many test images are classified between checks that
// the request is still wanted.
const analysisBlock = 1000

// analysisOf returns the analysis of e's current snapshot. A new one is
// computed by the first request that asks, one per network at a time and
// at most MaxAnalyses in the whole service; it stops if that request's ctx
// ends, and a request still waiting then takes over.
func (s *Service) analysisOf(ctx context.Context, e *entry, test *mnist.Set) (*analysis, error) {
	c := &e.analysis
	for {
		st := e.state.Load()
		c.mu.Lock()
		if a := c.latest; a != nil && a.st == st {
			c.mu.Unlock()
			return a, nil
		}
		if f := c.flight; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
				return nil, f.err
			}
			continue // done (for this snapshot or an older one), or its client left
		}
		select {
		case s.analyses <- struct{}{}:
		default:
			c.mu.Unlock()
			return nil, errBusy
		}
		f := &analysisFlight{done: make(chan struct{})}
		c.flight = f
		c.mu.Unlock()

		hold, err := s.reserve(ctx, analysisBytes(e.arch()))
		var a *analysis
		if err == nil {
			var release func()
			if release, err = s.takeCPU(ctx); err == nil {
				a, err = analyse(ctx, st, test)
				release()
			}
			hold.Release()
		}
		<-s.analyses
		c.mu.Lock()
		if err == nil {
			c.latest = a
		}
		f.err = err
		c.flight = nil
		c.mu.Unlock()
		close(f.done)
		return a, err
	}
}

// analyse runs the test set through st's network, a block at a time,
// stopping when ctx ends.
func analyse(ctx context.Context, st *state, test *mnist.Set) (*analysis, error) {
	n := test.Len()
	a := &analysis{st: st, pred: make([]uint8, n), conf: make([]float32, n)}
	run := model.RunnerOf(st.net)
	for lo := 0; lo < n; lo += analysisBlock {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+analysisBlock, n)
		out, err := run.Outputs(test.Slice(lo, hi))
		if err != nil {
			return nil, runError("", err)
		}
		k := len(out) / (hi - lo)
		for i := range hi - lo {
			p, c := predict(out[i*k : (i+1)*k])
			a.pred[lo+i], a.conf[lo+i] = uint8(p), float32(c)
		}
	}
	return a, nil
}

// predict returns the most active output and the network's confidence in
// it: how much more that output fires than the next most active one (both
// sigmoids in [0, 1]), so 0 to 1. A clear digit reads near 1 (its output
// near 1, the others near 0); two outputs firing alike, or none firing (a
// blank image), read near 0. (The share of the sum of the outputs read
// near 1 for any image where every output is near 0 but one is a little
// less so.)
func predict(out []float64) (digit int, confidence float64) {
	if len(out) == 0 {
		return 0, 0
	}
	for i, v := range out {
		if v > out[digit] {
			digit = i
		}
	}
	second := math.Inf(-1)
	for i, v := range out {
		if i != digit && v > second {
			second = v
		}
	}
	if math.IsInf(second, -1) {
		return digit, max(0, min(1, out[digit]))
	}
	return digit, max(0, min(1, out[digit]-second))
}

// Example is a test image with what a network made of it.
type Example struct {
	NetworkID string
	// Version identifies the snapshot of the network that answered: two
	// examples with the same NetworkID and Version share OutputWeights.
	Version        uint64
	Index          int // into the 10,000 test images
	PredictedDigit int
	ActualDigit    int
	Pixels         []uint8    // the 28×28 image, row by row, 0 background
	OutputWeights  *mat.Dense // the output layer's weights, one row per digit; shared, read-only
	NetworkOutput  []float64  // the output layer's activations
}

// probes is how many random test images are tried before scanning them all.
const probes = 64

// Example picks a random test image that the network classifies correctly
// (correct) or incorrectly (!correct), as it stands after its last finished
// epoch.
func (s *Service) Example(ctx context.Context, networkID string, correct bool) (Example, error) {
	e, err := s.lookup(ctx, networkID)
	if err != nil {
		return Example{}, err
	}
	ds, err := s.dataset()
	if err != nil {
		return Example{}, err
	}
	a, err := s.analysisOf(ctx, e, ds.Test)
	if err != nil {
		return Example{}, err
	}
	st := a.st
	test := ds.Test
	wanted := func(i int) bool { return (int(a.pred[i]) == test.Label(i)) == correct }

	idx := -1
	for range probes {
		if i := rand.IntN(len(a.pred)); wanted(i) {
			idx = i
			break
		}
	}
	if idx < 0 {
		var matches []int
		for i := range a.pred {
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
	hold, err := s.reserve(ctx, runBytes(e.arch()))
	if err != nil {
		return Example{}, err
	}
	defer hold.Release()
	release, err := s.takeCPUFor(ctx, e.params)
	if err != nil {
		return Example{}, err
	}
	defer release()
	out, err := st.net.FeedForward(scalePixels(pixels))
	if err != nil {
		return Example{}, runError(networkID, err)
	}
	return Example{
		NetworkID: networkID, Version: st.version, Index: idx, PredictedDigit: int(a.pred[idx]),
		ActualDigit: test.Label(idx), Pixels: pixels, NetworkOutput: out,
		OutputWeights: model.OutputWeights(st.net),
	}, nil
}

// scalePixels maps 8-bit intensities to the network's inputs in [0, 1].
func scalePixels(pixels []uint8) []float64 {
	x := make([]float64, len(pixels))
	for i, v := range pixels {
		x[i] = float64(v) / 255
	}
	return x
}
