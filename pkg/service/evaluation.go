package service

import (
	"cmp"
	"context"
	"slices"

	"github.com/mnist-go/nnserver/pkg/mnist"
)

// Evaluation is what a network makes of the whole test set.
type Evaluation struct {
	NetworkID string
	Version   uint64 // the snapshot evaluated (see Example.Version)
	Correct   int
	Total     int
	// Confusion counts test images by actual digit (row) and predicted
	// digit (column): its cells sum to Total, its diagonal to Correct.
	Confusion [mnist.Classes][mnist.Classes]int
	PerClass  [mnist.Classes]ClassStats
	// Mistakes are the wrong answers given with the most confidence, most
	// confident first, at most MaxMistakes.
	Mistakes []Classified
}

// ClassStats are one digit's figures.
type ClassStats struct {
	Digit     int
	Count     int      // test images of this digit
	Precision *float64 // of the images predicted as this digit, the share that are; nil if none is
	Recall    *float64 // of the images of this digit, the share predicted so; nil if there are none
}

// Classified is one test image with the network's answer.
type Classified struct {
	Index      int // into the test set
	Actual     int
	Predicted  int
	Confidence float64
	Pixels     []uint8 // 28×28, row by row; shared, read-only
}

// MaxMistakes is how many of the most confident mistakes an evaluation
// lists, and how many examples of one confusion a cell shows.
const MaxMistakes = 12

// Evaluation returns the network's figures on the test set as it stands
// after its last finished epoch, computed once per version.
func (s *Service) Evaluation(ctx context.Context, id string) (Evaluation, error) {
	a, ds, err := s.analysed(ctx, id)
	if err != nil {
		return Evaluation{}, err
	}
	a.evalOnce.Do(func() { a.eval = evaluate(id, a, ds.Test) })
	return a.eval, nil
}

// analysed returns the analysis of the network's current snapshot.
func (s *Service) analysed(ctx context.Context, id string) (*analysis, *mnist.Dataset, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	ds, err := s.dataset()
	if err != nil {
		return nil, nil, err
	}
	a, err := s.analysisOf(ctx, e, ds.Test)
	return a, ds, err
}

func evaluate(id string, a *analysis, test *mnist.Set) Evaluation {
	ev := Evaluation{NetworkID: id, Version: a.st.version, Total: len(a.pred)}
	var wrong []int
	for i, p := range a.pred {
		actual := test.Label(i)
		ev.Confusion[actual][p]++
		if int(p) == actual {
			ev.Correct++
		} else {
			wrong = append(wrong, i)
		}
	}
	for d := range mnist.Classes {
		predicted := 0
		for r := range mnist.Classes {
			predicted += ev.Confusion[r][d]
			ev.PerClass[d].Count += ev.Confusion[d][r]
		}
		ev.PerClass[d].Digit = d
		ev.PerClass[d].Precision = ratio(ev.Confusion[d][d], predicted)
		ev.PerClass[d].Recall = ratio(ev.Confusion[d][d], ev.PerClass[d].Count)
	}
	ev.Mistakes = mostConfident(a, test, wrong)
	return ev
}

func ratio(n, d int) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

// mostConfident returns the images of idx the network was surest about,
// at most MaxMistakes, surest first (ties by index).
func mostConfident(a *analysis, test *mnist.Set, idx []int) []Classified {
	idx = slices.Clone(idx)
	slices.SortFunc(idx, func(i, j int) int { return cmp.Or(cmp.Compare(a.conf[j], a.conf[i]), cmp.Compare(i, j)) })
	out := make([]Classified, 0, min(len(idx), MaxMistakes))
	for _, i := range idx[:min(len(idx), MaxMistakes)] {
		out = append(out, Classified{Index: i, Actual: test.Label(i), Predicted: int(a.pred[i]),
			Confidence: float64(a.conf[i]), Pixels: test.Image(i, nil)})
	}
	return out
}

// Confusion is the test images of one cell of the confusion matrix.
type Confusion struct {
	NetworkID string
	Version   uint64
	Actual    int
	Predicted int
	Count     int          // images in the cell
	Examples  []Classified // the most confident of them, at most MaxMistakes
}

// ConfusionCell returns the test images of digit actual that the network
// takes for predicted (on the diagonal: those it gets right).
func (s *Service) ConfusionCell(ctx context.Context, id string, actual, predicted int) (Confusion, error) {
	if actual < 0 || actual >= mnist.Classes || predicted < 0 || predicted >= mnist.Classes {
		return Confusion{}, Errorf(Invalid, "actual and predicted must be digits from 0 to 9")
	}
	a, ds, err := s.analysed(ctx, id)
	if err != nil {
		return Confusion{}, err
	}
	var idx []int
	for i, p := range a.pred {
		if int(p) == predicted && ds.Test.Label(i) == actual {
			idx = append(idx, i)
		}
	}
	return Confusion{NetworkID: id, Version: a.st.version, Actual: actual, Predicted: predicted, Count: len(idx),
		Examples: mostConfident(a, ds.Test, idx)}, nil
}

// Prediction is what a network makes of one input.
type Prediction struct {
	NetworkID  string
	Digit      int
	Confidence float64   // the top output over the sum of the outputs
	Outputs    []float64 // the output layer's activations
}

// Predict runs one input (784 values in [0, 1], row by row) through the
// network as it stands after its last finished epoch.
func (s *Service) Predict(ctx context.Context, id string, x []float64) (Prediction, error) {
	if len(x) != mnist.Pixels {
		return Prediction{}, Errorf(Invalid, "pixels must be %d numbers, got %d", mnist.Pixels, len(x))
	}
	for i, v := range x {
		if !(v >= 0 && v <= 1) {
			return Prediction{}, Errorf(Invalid, "pixels[%d] is %v, want a number between 0 and 1", i, v)
		}
	}
	e, err := s.lookup(ctx, id)
	if err != nil {
		return Prediction{}, err
	}
	hold, err := s.reserve(ctx, runBytes(e.arch()))
	if err != nil {
		return Prediction{}, err
	}
	defer hold.Release()
	release, err := s.takeCPUFor(ctx, e.params)
	if err != nil {
		return Prediction{}, err
	}
	defer release()
	out, err := e.state.Load().net.FeedForward(x)
	if err != nil {
		return Prediction{}, runError(id, err)
	}
	d, c := predict(out)
	return Prediction{NetworkID: id, Digit: d, Confidence: c, Outputs: out}, nil
}
