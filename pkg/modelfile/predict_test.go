package modelfile

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

// TestPredictExample runs docs/examples/predict.py, the NumPy snippet of
// docs/PYTHON.md, on a network trained here for one epoch and saved, and
// checks that it counts the test images the network gets right exactly as
// the network's own Evaluate does.
func TestPredictExample(t *testing.T) {
	py := python(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "docs", "examples", "predict.py")
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}

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
	path := filepath.Join(t.TempDir(), m.ID+".npz")
	putFile(t, path, saved(t, m, n))
	cmd := exec.Command(py, script, path)
	cmd.Dir = root // the script reads data/*.gz from the repository's root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr(err))
	}
	match := regexp.MustCompile(`^accuracy (\d\.\d{4}) \((\d+) of 10000\)\n$`).FindSubmatch(out)
	if match == nil {
		t.Fatalf("predict.py printed %q", out)
	}
	got, _ := strconv.Atoi(string(match[2]))
	t.Logf("predict.py: %s; Evaluate: %d of 10000", out[:len(out)-1], want)
	// NumPy's matrix products add in another order than the network's
	// kernels (sparse over the non-zero pixels, in vector lanes), so the
	// outputs may differ in their last bits, and an image whose two
	// strongest outputs are that close could be classified differently.
	// None is in practice; one is allowed.
	if d := got - want; d < -1 || d > 1 {
		t.Errorf("predict.py counts %d of 10000 right, Evaluate %d", got, want)
	}
}

// stderr returns what a failed command wrote to its standard error.
func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
