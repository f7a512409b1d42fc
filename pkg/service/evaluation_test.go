package service

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

func TestEvaluationOfAConstantNetwork(t *testing.T) {
	st := newFaultyStore(t)
	id := uuid.NewString()
	st.put(t, modelfile.Meta{ID: id, Sizes: []int{784, 1, 10}}, constantNet(t, 3))
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	ev, err := f.svc.Evaluation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	test := mustData(t).Test
	threes := 0
	for i := range test.Len() {
		if test.Label(i) == 3 {
			threes++
		}
	}
	if ev.Total != 10000 || ev.Correct != threes || ev.NetworkID != id {
		t.Fatalf("evaluation: %d of %d correct, want %d of 10000", ev.Correct, ev.Total, threes)
	}
	for d, c := range ev.PerClass {
		if c.Digit != d || c.Count != ev.Confusion[d][3] {
			t.Errorf("digit %d: %+v, confusion row %v", d, c, ev.Confusion[d])
		}
		switch {
		case d == 3 && (*c.Precision != float64(threes)/10000 || *c.Recall != 1):
			t.Errorf("digit 3: precision %v recall %v", *c.Precision, *c.Recall)
		case d != 3 && (c.Precision != nil || *c.Recall != 0):
			t.Errorf("digit %d, never predicted: precision %v recall %v", d, c.Precision, *c.Recall)
		}
	}
	// Every answer is as confident as any other: ties go by index.
	if len(ev.Mistakes) != MaxMistakes {
		t.Fatalf("%d mistakes listed", len(ev.Mistakes))
	}
	want := []int{}
	for i := 0; len(want) < MaxMistakes; i++ {
		if test.Label(i) != 3 {
			want = append(want, i)
		}
	}
	for k, m := range ev.Mistakes {
		if m.Index != want[k] || m.Predicted != 3 || m.Actual != test.Label(m.Index) || !slices.Equal(m.Pixels, test.Image(m.Index, nil)) {
			t.Errorf("mistake %d: %+v, want index %d", k, m, want[k])
		}
	}
	cell, err := f.svc.ConfusionCell(context.Background(), id, 7, 3)
	if err != nil || cell.Count != ev.Confusion[7][3] || len(cell.Examples) != MaxMistakes || cell.Examples[0].Actual != 7 {
		t.Errorf("cell 7→3: %+v, %v", cell, err)
	}
	if cell, err := f.svc.ConfusionCell(context.Background(), id, 7, 4); err != nil || cell.Count != 0 || len(cell.Examples) != 0 {
		t.Errorf("empty cell: %+v, %v", cell, err)
	}
	if _, err := f.svc.ConfusionCell(context.Background(), id, 10, 3); ErrorCode(err) != Invalid {
		t.Errorf("digit 10: %v", err)
	}
}

// TestEvaluationOfATrainedNetwork: the matrix agrees with the job's own
// figure and with itself, mistakes are sorted and wrong, and the result is
// computed once per version.
func TestEvaluationOfATrainedNetwork(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	job := f.train(t, id, 1)
	evs := f.events.waitEnd(t, job)
	done := evs[len(evs)-1].(Complete)
	ev, err := f.svc.Evaluation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sum, diag := 0, 0
	for r := range 10 {
		for c := range 10 {
			sum += ev.Confusion[r][c]
		}
		diag += ev.Confusion[r][r]
	}
	if sum != 10000 || diag != ev.Correct || float64(ev.Correct)/10000 != done.Accuracy {
		t.Errorf("cells sum to %d, diagonal %d, correct %d; the job reported %v", sum, diag, ev.Correct, done.Accuracy)
	}
	for k, m := range ev.Mistakes {
		if m.Actual == m.Predicted || m.Confidence <= 0 || m.Confidence > 1 || (k > 0 && m.Confidence > ev.Mistakes[k-1].Confidence) {
			t.Errorf("mistake %d: %+v", k, m)
		}
	}
	again, _ := f.svc.Evaluation(context.Background(), id)
	if &again.Mistakes[0] != &ev.Mistakes[0] || again.Version != ev.Version {
		t.Error("the evaluation of one version was computed twice")
	}
}

func TestPredict(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	x := scalePixels(mustData(t).Test.Image(0, nil))
	p, err := f.svc.Predict(context.Background(), id, x)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.svc.lookup(context.Background(), id)
	want, _ := e.state.Load().net.FeedForward(x)
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	best := slices.Index(want, sorted[9])
	if !slices.Equal(p.Outputs, want) || p.Digit != best || p.Confidence != sorted[9]-sorted[8] || p.NetworkID != id {
		t.Errorf("Predict: %+v, want outputs %v", p, want)
	}
	bad := slices.Clone(x)
	bad[5] = 1.5
	for _, in := range [][]float64{x[:783], bad, append(slices.Clone(x), 0)} {
		if _, err := f.svc.Predict(context.Background(), id, in); ErrorCode(err) != Invalid {
			t.Errorf("Predict(%d values): %v", len(in), err)
		}
	}
	if _, err := f.svc.Predict(context.Background(), uuid.NewString(), x); ErrorCode(err) != NotFound {
		t.Errorf("unknown network: %v", err)
	}
}

// TestConfidence: the confidence is the margin of the most active output
// over the next: near 1 for a clear answer, near 0 when two outputs fire
// alike or none fires (a blank image used to read 96.8% as a share of the
// outputs' sum).
func TestConfidence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		out   []float64
		digit int
		conf  float64
	}{
		{"clear", []float64{0.01, 0.02, 0.01, 0.97, 0.01, 0, 0, 0, 0, 0.03}, 3, 0.94},
		{"nothing fires", []float64{0.001, 0.002, 0.001, 0.001, 0.001, 0.03, 0.001, 0, 0, 0.001}, 5, 0.028},
		{"two alike", []float64{0, 0, 0, 0, 0.8, 0, 0, 0, 0, 0.79}, 4, 0.01},
		{"all equal", []float64{0.5, 0.5, 0.5}, 0, 0},
		{"one output", []float64{0.7}, 0, 0.7},
	} {
		d, c := predict(tc.out)
		if d != tc.digit || math.Abs(c-tc.conf) > 1e-12 {
			t.Errorf("%s: predict = %d, %v; want %d, %v", tc.name, d, c, tc.digit, tc.conf)
		}
	}
}
