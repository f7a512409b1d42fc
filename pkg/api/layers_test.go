package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/service"
)

const smallConvBody = `{"layers": [
	{"type": "conv", "filters": 4, "size": 5, "activation": "relu"},
	{"type": "pool", "size": 2},
	{"type": "dense", "size": 16, "activation": "relu", "dropout": 0.2},
	{"type": "softmax", "size": 10}
], "init": "scaled", "seed": 7}`

// TestCreateLayers: a layers network's answers give its flattened sizes as
// architecture and its layers with their output shapes; layer_sizes
// networks' answers have no layers.
func TestCreateLayers(t *testing.T) {
	s := newServer(t)
	example := `{"layers": [
	  {"type": "conv", "filters": 20, "size": 5, "activation": "relu"},
	  {"type": "pool", "size": 2},
	  {"type": "conv", "filters": 40, "size": 5, "activation": "relu"},
	  {"type": "pool", "size": 2},
	  {"type": "dense", "size": 100, "activation": "relu", "dropout": 0.5},
	  {"type": "softmax", "size": 10}
	], "init": "scaled", "seed": 7}`
	r := s.do(t, "POST", "/api/networks", jsonCT, example)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var got struct {
		ID     string          `json:"network_id"`
		Arch   []int           `json:"architecture"`
		Layers json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(got.Arch); string(b) != "[784,11520,2880,2560,640,100,10]" {
		t.Errorf("architecture %s", b)
	}
	want := `[{"type":"conv","filters":20,"size":5,"activation":"relu","output_shape":[20,24,24]},` +
		`{"type":"pool","size":2,"output_shape":[20,12,12]},` +
		`{"type":"conv","filters":40,"size":5,"activation":"relu","output_shape":[40,8,8]},` +
		`{"type":"pool","size":2,"output_shape":[40,4,4]},` +
		`{"type":"dense","size":100,"activation":"relu","dropout":0.5,"output_shape":[100]},` +
		`{"type":"softmax","size":10,"dropout":0,"output_shape":[10]}]`
	if string(got.Layers) != want {
		t.Errorf("layers %s\nwant    %s", got.Layers, want)
	}
	for _, path := range []string{"/api/networks/" + got.ID, "/api/networks"} {
		if body := s.do(t, "GET", path, "", "").body; !strings.Contains(body, want) {
			t.Errorf("GET %s: %s", path, body)
		}
	}
	fc := s.createNetwork(t)
	if body := s.do(t, "GET", "/api/networks/"+fc, "", "").body; strings.Contains(body, `"layers"`) {
		t.Errorf("a layer_sizes network's answer has layers: %s", body)
	}
}

// TestCreateLayersRefused: bad lists are 400s that say what is wrong.
func TestCreateLayersRefused(t *testing.T) {
	lim := service.DefaultLimits()
	s := newServerWith(t, lim)
	long := `{"layers": [` + strings.Repeat(`{"type": "pool", "size": 1},`, 30000) + `{"type": "softmax", "size": 10}]}`
	for _, tc := range []struct{ name, body, want string }{
		{"both", `{"layer_sizes": [784, 10], "layers": [{"type": "softmax", "size": 10}]}`, "give layer_sizes or layers, not both"},
		{"does not chain", `{"layers": [{"type": "dense", "size": 10, "activation": "relu"}, {"type": "conv", "filters": 2, "size": 3, "activation": "relu"}, {"type": "softmax", "size": 10}]}`, "layers[1] (conv 3×3) comes after a dense layer"},
		{"kernel too large", `{"layers": [{"type": "conv", "filters": 2, "size": 5, "activation": "relu"}, {"type": "pool", "size": 4}, {"type": "conv", "filters": 2, "size": 7, "activation": "relu"}, {"type": "softmax", "size": 10}]}`, "layers[2] (conv 7×7) needs an input of at least 7×7, got 6×6×2"},
		{"pool does not divide", `{"layers": [{"type": "pool", "size": 5}, {"type": "softmax", "size": 10}]}`, "layers[0] (pool 5×5) needs an input whose height and width 5 divides"},
		{"last layer", `{"layers": [{"type": "dense", "size": 10, "activation": "relu"}]}`, "layers[0] (dense 10) is the last layer"},
		{"unknown key", `{"layers": [{"type": "softmax", "size": 10, "stride": 2}]}`, `layers[0] has an unknown key "stride"`},
		{"bad type", `{"layers": [{"type": "softmax", "size": "10"}]}`, "layers[0].size must be a positive integer"},
		{"no type", `{"layers": [{"size": 10}]}`, `layers[0] needs a "type"`},
		{"not an object", `{"layers": [3]}`, "layers[0] must be an object"},
		{"not a list", `{"layers": {"type": "softmax"}}`, "layers must be a list"},
		{"empty", `{"layers": []}`, "layers must list at least one layer"},
		{"too many", long, "layers may list at most 10 layers, got 30001"},
		{"params", `{"layers": [{"type": "dense", "size": 100000, "activation": "relu"}, {"type": "softmax", "size": 10}]}`, "more than the limit of 5000000"},
		{"activations", `{"layers": [{"type": "conv", "filters": 2000, "size": 1, "activation": "relu"}, {"type": "pool", "size": 28}, {"type": "softmax", "size": 10}]}`, "activations per image"},
		{"dropout", `{"layers": [{"type": "softmax", "size": 10, "dropout": 0.95}]}`, "dropout 0.95"},
		{"activation", `{"layers": [{"type": "conv", "filters": 2, "size": 3, "activation": "swish"}, {"type": "softmax", "size": 10}]}`, `activation "swish"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/api/networks", jsonCT, tc.body)
			if msg, _ := r.json(t)["error"].(string); r.status != 400 || !strings.Contains(msg, tc.want) {
				t.Errorf("%d %s; want 400 with %q", r.status, r.body, tc.want)
			}
		})
	}
}

// TestTrainLayers: a layers network trains through the API with its
// defaults, reports validation accuracy per epoch and its kernels, and
// refuses what does not fit its kind.
func TestTrainLayers(t *testing.T) {
	s := newServer(t)
	r := s.do(t, "POST", "/api/networks", jsonCT, smallConvBody)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["network_id"].(string)
	if r := s.do(t, "GET", "/api/networks/"+id+"/kernels", "", ""); r.status != 200 || !strings.Contains(r.body, `"filters":4,"channels":1,"size":5`) {
		t.Errorf("kernels before training: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"cost": "quadratic"}`, "log-likelihood"},
		{`{"expand": "yes"}`, "expand must be true or false"},
	} {
		if r := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, tc.body); r.status != 400 || !strings.Contains(r.body, tc.want) {
			t.Errorf("train %s: %d %s", tc.body, r.status, r.body)
		}
	}
	fc := s.createNetwork(t)
	if r := s.do(t, "POST", "/api/networks/"+fc+"/train", jsonCT, `{"expand": true}`); r.status != 400 || !strings.Contains(r.body, "expand is for networks made with layers") {
		t.Errorf("expand for layer_sizes: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/api/networks/"+fc+"/kernels", "", ""); r.status != 404 || !strings.Contains(r.body, "the network has no convolutional layer") {
		t.Errorf("kernels of layer_sizes: %d %s", r.status, r.body)
	}

	r = s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs": 1, "seed": 1}`)
	if r.status != 200 {
		t.Fatalf("train: %d %s", r.status, r.body)
	}
	job := s.waitJob(t, r.json(t)["job_id"].(string))
	hist := job["history"].([]any)
	if job["status"] != "completed" || job["cost"] != "log_likelihood" || job["learning_rate"] != 0.03 || job["expand"] != false || len(hist) != 1 {
		t.Fatalf("job %v", job)
	}
	if e := hist[0].(map[string]any); !(e["validation_accuracy"].(float64) > 0.8) || !(e["accuracy"].(float64) > 0.8) {
		t.Errorf("epoch %v", e)
	}
	r = s.do(t, "GET", "/api/networks/"+id+"/kernels", "", "")
	var k struct {
		Epochs  int             `json:"epochs_trained"`
		Kernels [][][][]float64 `json:"kernels"`
	}
	if err := json.Unmarshal([]byte(r.body), &k); err != nil || k.Epochs != 1 || len(k.Kernels) != 4 || len(k.Kernels[0]) != 1 || len(k.Kernels[0][0]) != 5 || len(k.Kernels[0][0][0]) != 5 {
		t.Errorf("kernels %d %.200s (%v)", r.status, r.body, err)
	}
	ex := s.do(t, "GET", "/api/networks/"+id+"/successful_example", "", "")
	var exb struct {
		OutputWeights [][]float64 `json:"output_weights"`
		Output        []float64   `json:"network_output"`
	}
	if err := json.Unmarshal([]byte(ex.body), &exb); err != nil || len(exb.OutputWeights) != 10 || len(exb.OutputWeights[0]) != 16 || len(exb.Output) != 10 {
		t.Errorf("example %d %.200s", ex.status, ex.body)
	}
	if r := s.do(t, "GET", "/api/networks/"+id+"/download", "", ""); r.status != 200 || !strings.Contains(r.body, `"format_version": 3`) {
		t.Errorf("download %d", r.status)
	}
	if r := s.do(t, "GET", "/api/networks/"+id+"/evaluation", "", ""); r.status != 200 {
		t.Errorf("evaluation %d %s", r.status, r.body)
	}
}
