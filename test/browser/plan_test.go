package browser

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/deep"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// TestPlanMirror checks that the page's layer editor (web/layers.js, run
// by Node) judges lists of layers as pkg/deep's Plan and Count do: the same
// lists refused, with the same message and layer, and the same shapes,
// weights and biases, multiply-adds and activations of those accepted.
func TestPlanMirror(t *testing.T) {
	node := testenv.Tool(t, "node", "the browser suite needs Node.js 20+")
	type jsLayer struct {
		Type       string  `json:"type"`
		Filters    int     `json:"filters"`
		Size       int     `json:"size"`
		Activation string  `json:"activation"`
		Dropout    float64 `json:"dropout"`
	}
	type limits struct {
		MaxParams      int `json:"maxParams"`
		MaxMACs        int `json:"maxMACs"`
		MaxActivations int `json:"maxActivations"`
	}
	type testCase struct {
		Layers []jsLayer `json:"layers"`
		Limits limits    `json:"limits"`
	}
	type result struct {
		Error       string   `json:"error,omitempty"`
		Before      int      `json:"before,omitempty"` // the page's shapes of the layers before the one refused
		Index       int      `json:"index,omitempty"`
		Shapes      [][3]int `json:"shapes,omitempty"`
		Params      int      `json:"params,omitempty,string"`
		MACs        int      `json:"macs,omitempty,string"`
		Activations int      `json:"activations,omitempty,string"`
	}

	ch6 := []jsLayer{
		{"conv", 20, 5, "relu", 0}, {"pool", 0, 2, "", 0}, {"conv", 40, 5, "relu", 0}, {"pool", 0, 2, "", 0},
		{"dense", 0, 100, "relu", 0.5}, {"softmax", 0, 10, "", 0},
	}
	def := limits{5_000_000, 100_000_000, 1_000_000}
	cases := []testCase{
		{ch6, def}, {ch6, limits{}}, {nil, def},
		{ch6[:5], def}, // the last layer rule
		{[]jsLayer{{"dense", 0, 30, "sigmoid", 0}, {"dense", 0, 10, "sigmoid", 0}}, def},
		{[]jsLayer{{"dense", 0, 10, "relu", 0}}, def},
		{[]jsLayer{{"conv", 20, 28, "tanh", 0}, {"softmax", 0, 10, "", 0}}, def}, // a 1×1 output
		{[]jsLayer{{"conv", 1 << 31, 5, "relu", 0}, {"softmax", 0, 10, "", 0}}, limits{}},
		{[]jsLayer{{"conv", 1 << 20, 1, "relu", 0}, {"softmax", 0, 10, "", 0}}, limits{}},
		{[]jsLayer{{"dense", 0, 1 << 30, "relu", 0}, {"dense", 0, 1 << 30, "relu", 0}, {"softmax", 0, 10, "", 0}}, limits{}},
		{[]jsLayer{{"dense", 0, 100, "relu", 1e-5}, {"softmax", 0, 10, "", 1e6}}, def},
		{[]jsLayer{{"dense", 0, 100, "relu", 0.95}, {"softmax", 0, 10, "", 0}}, def},
		{[]jsLayer{{"pool", 0, 2, "", 0.25}, {"softmax", 0, 10, "", 0}}, def},
	}
	// Random lists around the rules' edges.
	rng := rand.New(rand.NewPCG(1, 18))
	kinds := []string{"conv", "pool", "dense", "softmax", "conv", "pool", "dense", "bogus"}
	acts := []string{"relu", "sigmoid", "tanh", "", "relu", "sigmoid", "softsign"}
	drops := []float64{0, 0, 0, 0.5, 0.9, 0.95, -0.1, 1.5e-7, 0.125}
	lims := []limits{def, {}, {2000, 50_000, 5000}, {100_000, 1_000_000, 20_000}}
	for range 4000 {
		n := rng.IntN(7)
		var ls []jsLayer
		for range n {
			l := jsLayer{Type: kinds[rng.IntN(len(kinds))]}
			switch l.Type {
			case "conv":
				l.Filters, l.Size, l.Activation = rng.IntN(50)-2, rng.IntN(12)-1, acts[rng.IntN(len(acts))]
			case "pool":
				l.Size = rng.IntN(8) - 1
			case "dense":
				l.Size, l.Activation, l.Dropout = rng.IntN(300)-2, acts[rng.IntN(len(acts))], drops[rng.IntN(len(drops))]
			default:
				l.Size = []int{10, 10, 10, 9, 0}[rng.IntN(5)]
				l.Dropout = drops[rng.IntN(len(drops))]
			}
			if rng.IntN(20) == 0 { // a field the kind does not take
				l.Filters = 3
			}
			if rng.IntN(20) == 0 {
				l.Activation = "relu"
			}
			if rng.IntN(20) == 0 {
				l.Dropout = 0.5
			}
			ls = append(ls, l)
		}
		if n > 0 && rng.IntN(2) == 0 { // most lists end as the rules want
			ls[n-1] = []jsLayer{{Type: "softmax", Size: 10}, {Type: "dense", Size: 10, Activation: "sigmoid"}}[rng.IntN(2)]
		}
		cases = append(cases, testCase{ls, lims[rng.IntN(len(lims))]})
	}

	want := make([]result, len(cases))
	accepted := 0
	for i, c := range cases {
		layers := make([]deep.Layer, len(c.Layers))
		for j, l := range c.Layers {
			layers[j] = deep.Layer{Kind: deep.Kind(l.Type), Filters: l.Filters, Size: l.Size, Activation: deep.Activation(l.Activation), Dropout: l.Dropout}
		}
		shapes, err := deep.Plan(layers, deep.Limits{MaxParams: c.Limits.MaxParams, MaxMACs: c.Limits.MaxMACs, MaxActivations: c.Limits.MaxActivations})
		if err != nil {
			var le *deep.LayerError
			if !errors.As(err, &le) {
				t.Fatalf("case %d: Plan's error %v is not a LayerError", i, err)
			}
			want[i] = result{Error: err.Error(), Index: le.Index, Before: max(le.Index, 0)}
			if strings.Contains(le.Msg, "is the last layer:") { // every layer planned
				want[i].Before = len(layers)
			}
			continue
		}
		st, err := deep.Count(layers)
		if err != nil {
			t.Fatalf("case %d: Count: %v", i, err)
		}
		accepted++
		want[i] = result{Params: st.Params, MACs: st.MACs, Activations: st.Activations}
		for _, s := range shapes {
			want[i].Shapes = append(want[i].Shapes, [3]int{s.Channels, s.Height, s.Width})
		}
	}
	t.Logf("%d cases, %d accepted", len(cases), accepted)

	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(testenv.ModuleRoot(t), "test", "browser", "plan_mirror.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node plan_mirror.mjs: %v\n%s", err, stderr.Bytes())
	}
	var got []result
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node's answer: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("node judged %d cases, want %d", len(got), len(want))
	}
	bad := 0
	for i := range want {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if !bytes.Equal(g, w) {
			if bad++; bad <= 20 {
				c, _ := json.Marshal(cases[i])
				t.Errorf("case %d %s:\n page   %s\n server %s", i, c, g, w)
			}
		}
	}
	if bad > 20 {
		t.Errorf("… %d cases differ in all", bad)
	}
}
