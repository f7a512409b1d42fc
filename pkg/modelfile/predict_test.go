package modelfile

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/network"
)

// TestPredictExample runs docs/examples/predict.py, the NumPy snippet of
// docs/PYTHON.md, on a network trained here for one epoch and saved, and
// checks that it counts the test images the network gets right exactly as
// the network's own Evaluate does.
func TestPredictExample(t *testing.T) {
	p := newPredictScript(t)
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{784, 30, 10}
	n, err := network.SGD(context.Background(), newNet(t, sizes, 2024), ds.Training, ds.Test,
		network.Params{Epochs: 1, BatchSize: 10, Eta: 3}, rand.New(rand.NewPCG(2024, 7)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := n.Evaluate(ds.Test)
	if err != nil {
		t.Fatal(err)
	}

	m := newMeta(newID(), sizes)
	m.History, m.EpochsTrained = nil, 1
	got, _ := p.run(t, m, n)
	t.Logf("Evaluate: %d of 10000", want)
	// NumPy's matrix products add in another order than the network's
	// kernels (sparse over the non-zero pixels, in vector lanes), so the
	// outputs may differ in their last bits, and an image whose two
	// strongest outputs are that close could be classified differently.
	// None is in practice; one is allowed.
	if d := got - want; d < -1 || d > 1 {
		t.Errorf("predict.py counts %d of 10000 right, Evaluate %d", got, want)
	}
}

// TestPredictLayersExample runs docs/examples/predict.py on layers networks
// (format_version 3) trained here with pkg/deep, seeded, for one epoch on
// 5,000 training images, and checks that its NumPy forward pass counts the
// test images each gets right exactly as deep's Evaluate does. Between them
// the networks have every activation in a conv and in a dense layer, two
// conv layers (the second over several channels), pooling, dropout on a
// dense and on a softmax layer (its inference scaling) and both kinds of
// output layer: a script that left out the dropout scaling, flattened the
// planes channel last, flipped the kernels (convolution proper) or swapped
// an activation would count another number for at least one of them.
// Where the Python has PyTorch, docs/PYTHON.md's PyTorch code loads each
// network too and must count as Evaluate does. Under -short only the first
// network runs, without PyTorch (the rest take several seconds more).
//
// deep computes in float32 and NumPy in float64: their outputs differ, by
// at most 5e-7 for these networks. An image can be classified differently
// only if its two strongest outputs are closer than twice that, so the test
// allows as many images of difference as there are images whose two
// strongest outputs are within nearTie = 1e-5 of each other (20 times the
// bound), and logs the closest. With these seeds there are none (the
// closest are 8e-5 apart): the counts must be equal.
func TestPredictLayersExample(t *testing.T) {
	p := newPredictScript(t)
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	train := ds.Training.Slice(0, 5000)
	const nearTie = 1e-5
	const first = "conv relu, pool, softmax"
	for _, tc := range []struct {
		name   string
		layers []deep.Layer
		params deep.Params
	}{
		{first, []deep.Layer{
			{Kind: deep.Conv, Filters: 8, Size: 5, Activation: deep.ReLU},
			{Kind: deep.Pool, Size: 2},
			{Kind: deep.Softmax, Size: classes},
		}, deep.Params{Epochs: 1, BatchSize: 10, Eta: 0.1}},
		{"conv relu, pool, conv tanh, pool, dense relu dropout, softmax dropout", []deep.Layer{
			{Kind: deep.Conv, Filters: 6, Size: 5, Activation: deep.ReLU},
			{Kind: deep.Pool, Size: 2},
			{Kind: deep.Conv, Filters: 8, Size: 3, Activation: deep.Tanh},
			{Kind: deep.Pool, Size: 2},
			{Kind: deep.Dense, Size: 30, Activation: deep.ReLU, Dropout: 0.5},
			{Kind: deep.Softmax, Size: classes, Dropout: 0.2},
		}, deep.Params{Epochs: 1, BatchSize: 10, Eta: 0.1}},
		{"conv relu, pool, conv sigmoid, pool, dense tanh dropout, dense sigmoid dropout", []deep.Layer{
			{Kind: deep.Conv, Filters: 4, Size: 5, Activation: deep.ReLU},
			{Kind: deep.Pool, Size: 2},
			{Kind: deep.Conv, Filters: 6, Size: 3, Activation: deep.Sigmoid},
			{Kind: deep.Pool, Size: 2},
			{Kind: deep.Dense, Size: 20, Activation: deep.Tanh, Dropout: 0.3},
			{Kind: deep.Dense, Size: classes, Activation: deep.Sigmoid, Dropout: 0.1},
		}, deep.Params{Epochs: 1, BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != first {
				t.Skip("-short runs the first network only")
			}
			rng := rand.New(rand.NewPCG(2024, 7))
			start, err := deep.New(tc.layers, network.InitScaled, rng)
			if err != nil {
				t.Fatal(err)
			}
			// SGD's own evaluation after the epoch is not what is compared.
			n, err := deep.SGD(context.Background(), start, train, ds.Test.Slice(0, 100), tc.params, rng, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := n.Evaluate(ds.Test)
			if err != nil {
				t.Fatal(err)
			}
			out, err := n.Outputs(ds.Test)
			if err != nil {
				t.Fatal(err)
			}
			ties, closest := 0, 1.0
			for i := range ds.Test.Len() {
				o := slices.Clone(out[i*classes : (i+1)*classes])
				slices.Sort(o)
				gap := o[classes-1] - o[classes-2]
				closest = min(closest, gap)
				if gap < nearTie {
					ties++
				}
			}

			m := newMeta(newID(), n.Sizes())
			m.Layers, m.Init = n.Layers(), InitScaled
			m.History, m.EpochsTrained = nil, 1
			got, path := p.run(t, m, n)
			t.Logf("Evaluate: %d of 10000; closest two strongest outputs %.2g apart, %d images within %g", want, closest, ties, nearTie)
			if d := got - want; d < -ties || d > ties {
				t.Errorf("predict.py counts %d of 10000 right, Evaluate %d (%d near ties)", got, want, ties)
			}
			if testing.Short() {
				return
			}
			if torch, ok := p.torch(t); ok {
				got := p.runTorch(t, torch, path)
				if d := got - want; d < -ties || d > ties {
					t.Errorf("PyTorch counts %d of 10000 right, Evaluate %d (%d near ties)", got, want, ties)
				}
			}
		})
	}
}

// classes is the number of outputs of every network.
const classes = deep.Classes

// predictScript is docs/examples/predict.py, checked to be shown as it is
// in docs/PYTHON.md, and a Python with NumPy to run it.
type predictScript struct {
	py, root, script string
}

func newPredictScript(t *testing.T) predictScript {
	t.Helper()
	py := python(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "docs", "examples", "predict.py")
	// docs/PYTHON.md shows the script's code, its opening comment aside.
	code, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "PYTHON.md"))
	if err != nil {
		t.Fatal(err)
	}
	body := code[bytes.Index(code, []byte("import ")):]
	if !bytes.Contains(doc, append(append([]byte("```python\n"), body...), "```"...)) {
		t.Error("docs/PYTHON.md does not show docs/examples/predict.py as it is")
	}
	return predictScript{py, root, script}
}

// run saves n with m as a store does, runs the script on the file and
// returns how many of the 10,000 test images it says n gets right, and the
// file's path.
func (p predictScript) run(t *testing.T, m Meta, n model.Model) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), m.ID+".npz")
	putFile(t, path, saved(t, m, n))
	cmd := exec.Command(p.py, p.script, path)
	cmd.Dir = p.root // the script reads data/*.gz from the repository's root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", p.script, err, stderr(err))
	}
	match := regexp.MustCompile(`^accuracy (\d\.\d{4}) \((\d+) of 10000\)\n$`).FindSubmatch(out)
	if match == nil {
		t.Fatalf("predict.py printed %q", out)
	}
	got, _ := strconv.Atoi(string(match[2]))
	t.Logf("predict.py: %s", out[:len(out)-1])
	return got, path
}

// torch returns docs/PYTHON.md's PyTorch code (the python block that
// imports torch), made a script that loads the file its argument names as
// z, runs the code and prints how many of the test images net gets right.
// ok is false, and the test says so, if the Python has no PyTorch.
func (p predictScript) torch(t *testing.T) (script string, ok bool) {
	t.Helper()
	if exec.Command(p.py, "-c", "import torch").Run() != nil {
		t.Logf("%s has no PyTorch (apt-get install python3-torch): docs/PYTHON.md's PyTorch code is not run", p.py)
		return "", false
	}
	doc, err := os.ReadFile(filepath.Join(p.root, "docs", "PYTHON.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```python\n(.*?)```").FindAllSubmatch(doc, -1)
	var code []byte
	for _, b := range blocks {
		if bytes.Contains(b[1], []byte("import torch\n")) {
			if code != nil {
				t.Fatal("docs/PYTHON.md has two python blocks that import torch")
			}
			code = b[1]
		}
	}
	if code == nil {
		t.Fatal("docs/PYTHON.md has no python block that imports torch")
	}
	return "import gzip, sys\nimport numpy as np\nz = np.load(sys.argv[1])\n" + string(code) + `
with gzip.open("data/t10k-images-idx3-ubyte.gz") as f:
    X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28) / 255
with gzip.open("data/t10k-labels-idx1-ubyte.gz") as f:
    Y = np.frombuffer(f.read(), np.uint8, offset=8)
with torch.no_grad():
    out = net(torch.from_numpy(X).float())
print(int((out.argmax(dim=1).numpy() == Y).sum()))
`, true
}

// runTorch runs the script torch made on the file at path and returns how
// many test images PyTorch gets right.
func (p predictScript) runTorch(t *testing.T, script, path string) int {
	t.Helper()
	cmd := exec.Command(p.py, "-c", script, path)
	cmd.Dir = p.root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docs/PYTHON.md's PyTorch code: %v\n%s", err, stderr(err))
	}
	got, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil {
		t.Fatalf("the PyTorch script printed %q", out)
	}
	t.Logf("PyTorch: %d of 10000", got)
	return got
}

// stderr returns what a failed command wrote to its standard error.
func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
