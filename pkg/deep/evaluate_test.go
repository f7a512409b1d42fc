package deep

import "testing"

// TestEvalChunk: the example conv network's images are evaluated 4 at a
// time in 1.25 MiB of scratch, a dense network's 16, a wide conv layer's
// fewer than 4 (not rounded), a list that does not plan none; EvalChunk
// says what the evaluator does.
func TestEvalChunk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []Layer
		want   int
	}{
		{"example", exampleLayers, 4},
		{"nielsen", nielsenLayers, 4},
		{"dense", denseLayers, 16},
		{"one conv of 64 filters 3×3 (373 KB an image)", []Layer{{Kind: Conv, Filters: 64, Size: 3, Activation: ReLU}, {Kind: Softmax, Size: 10}}, 3},
		{"does not plan", []Layer{{Kind: Dense, Size: 30, Activation: ReLU}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EvalChunk(tc.layers)
			if got != tc.want {
				t.Errorf("EvalChunk = %d, want %d", got, tc.want)
			}
			if tc.want > 0 {
				if rows := newEvaluator(newEngine(newTestNet(t, tc.layers, 1))).rows; rows != got {
					t.Errorf("the evaluator runs %d at a time, EvalChunk says %d", rows, got)
				}
			}
		})
	}
}
