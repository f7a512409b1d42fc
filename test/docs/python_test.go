package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// TestPredictPyWithoutNumPy runs docs/examples/predict.py as PYTHON.md
// says, with a Python that cannot import NumPy, and checks that it says
// which interpreter ran it and how to install NumPy, and exits with status
// 2. NumPy is hidden by a numpy.py that raises ImportError, first on
// PYTHONPATH: that hides an installed NumPy wherever it is.
func TestPredictPyWithoutNumPy(t *testing.T) {
	e2e(t)
	py := testenv.Tool(t, "python3", "apt-get install python3")
	root := testenv.ModuleRoot(t)
	hide := t.TempDir()
	if err := os.WriteFile(filepath.Join(hide, "numpy.py"),
		[]byte("raise ModuleNotFoundError(\"No module named 'numpy' (hidden by test/docs)\", name='numpy')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PYTHONPATH="+hide)

	// The interpreter python3 is, as the script sees itself.
	which := exec.Command(py, "-c", "import sys; print(sys.executable)")
	which.Env = env
	exe, err := which.Output()
	if err != nil {
		t.Fatal(err)
	}
	executable := strings.TrimSpace(string(exe))
	check := exec.Command(py, "-c", "import numpy")
	check.Env = env
	if check.Run() == nil {
		t.Fatalf("%s imports numpy despite PYTHONPATH=%s: the test cannot hide it", executable, hide)
	}

	cmd := exec.Command(py, "docs/examples/predict.py", "models/6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f.npz")
	cmd.Dir, cmd.Env = root, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("$ python3 docs/examples/predict.py …  (%s, without NumPy)\n%s", executable, stderr.Bytes())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("exit: %v, want status 2", err)
	}
	msg := stderr.String()
	for _, want := range []string{"NumPy", executable, executable + " -m pip install numpy", "apt-get install python3-numpy",
		"/usr/bin/python3 docs/examples/predict.py models/6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f.npz"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message lacks %q", want)
		}
	}
	if strings.Contains(msg, "Traceback") || stdout.Len() != 0 {
		t.Errorf("want only the message, got a traceback or output: %s%s", stdout.Bytes(), msg)
	}
}

// layout is one of the ways docs/PYTHON.md and docs/API.md say a
// network.py network may be saved: the docs' np.savez code, edited as the
// text says (each edit must apply once), on a network of these sizes with
// arrays of this dtype and biases as columns or flat.
type layout struct {
	name   string
	sizes  []int
	dtype  string // float64, float32
	biases string // column (n, 1), flat (n,)
	edits  [][2]string
	first  int // the number of the first weights and biases
}

var (
	fromOne = [][2]string{{"enumerate(net.weights)", "enumerate(net.weights, 1)"}, {"enumerate(net.biases)", "enumerate(net.biases, 1)"}}
	deflate = [][2]string{{"np.savez(", "np.savez_compressed("}}
)

var layouts = []layout{
	{"as written", []int{784, 30, 10}, "float64", "column", nil, 0},
	{"flat biases", []int{784, 30, 10}, "float64", "flat", nil, 0},
	{"float32", []int{784, 30, 10}, "float32", "column", nil, 0},
	{"numbered from 1", []int{784, 30, 10}, "float64", "column", fromOne, 1},
	{"savez_compressed", []int{784, 30, 10}, "float64", "column", deflate, 0},
	{"all of them, two hidden layers", []int{784, 20, 16, 10}, "float32", "flat", slices.Concat(fromOne, deflate), 1},
}

// TestImportLayouts writes, with NumPy, each file docs/PYTHON.md ("Networks
// made with Python") and docs/API.md (POST /api/networks/import) say the
// server imports: the np.savez code of PYTHON.md run as it is (and edited
// for the variants the text lists), on a network shaped as network.py's.
// Each is imported into the real server with a POST and with every command
// of API.md's import example as written (run with sh where the docs' code
// left net.npz), and must come back 200 with its architecture and compute
// what NumPy computes.
func TestImportLayouts(t *testing.T) {
	e2e(t)
	py := numpyPython(t)
	testenv.Tool(t, "curl", "apt-get install curl")
	root := testenv.ModuleRoot(t)
	snippet := sectionBlock(t, "PYTHON.md", "Networks made with Python", "python")
	if !strings.Contains(snippet.Code, `"weights_%d"`) || !strings.Contains(snippet.Code, `"biases_%d"`) {
		t.Errorf("%v: the code no longer saves weights_%%d and biases_%%d:\n%s", snippet, snippet.Code)
	}
	commands := shellCommands(sectionBlock(t, "API.md", "`POST /api/networks/import`", "sh").Code)
	if len(commands) == 0 {
		t.Fatal("docs/API.md: no import command")
	}
	s := startServer(t)

	for _, l := range layouts {
		t.Run(strings.ReplaceAll(l.name, " ", "_"), func(t *testing.T) {
			code := snippet.Code
			for _, e := range l.edits {
				if strings.Count(code, e[0]) != 1 {
					t.Fatalf("%v: %q is not in the code once: the variant cannot be made from it", snippet, e[0])
				}
				code = strings.Replace(code, e[0], e[1], 1)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "snippet.py")
			if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
				t.Fatal(err)
			}
			sizes, _ := json.Marshal(l.sizes)
			cmd := exec.CommandContext(t.Context(), py, filepath.Join(root, "test", "docs", "nielsen.py"), string(sizes), l.dtype, l.biases, file)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("nielsen.py: %v\n%s", err, stderr.Bytes())
			}
			var made struct {
				Entries    []string  `json:"entries"`
				Compressed bool      `json:"compressed"`
				Dtypes     []string  `json:"dtypes"`
				Pixels     []float64 `json:"pixels"`
				Output     []float64 `json:"output"`
			}
			if err := json.Unmarshal(out, &made); err != nil {
				t.Fatalf("nielsen.py: %v: %s", err, out)
			}
			t.Logf("net.npz: %v, compressed %v, %v", made.Entries, made.Compressed, made.Dtypes)
			if wantDeflate := strings.Contains(code, "savez_compressed"); made.Compressed != wantDeflate || !slices.Equal(made.Dtypes, []string{l.dtype}) {
				t.Fatalf("the file is not the variant: compressed %v, dtypes %v", made.Compressed, made.Dtypes)
			}
			if want := fmt.Sprintf("weights_%d.npy", l.first); !slices.Contains(made.Entries, want) {
				t.Fatalf("the docs' code did not write %s: %v", want, made.Entries)
			}
			npz, err := os.ReadFile(filepath.Join(dir, "net.npz"))
			if err != nil {
				t.Fatal(err)
			}

			// A POST, as API.md describes it.
			var imported importAnswer
			s.call(t, "POST", "/api/networks/import", "application/octet-stream", npz, &imported)
			imported.check(t, "POST /api/networks/import", l.sizes)
			var p struct {
				NetworkOutput []float64 `json:"network_output"`
			}
			body, _ := json.Marshal(map[string]any{"pixels": made.Pixels})
			s.call(t, "POST", "/api/networks/"+imported.NetworkID+"/predict", "application/json", body, &p)
			if len(p.NetworkOutput) != len(made.Output) {
				t.Fatalf("network_output %v, NumPy %v", p.NetworkOutput, made.Output)
			}
			for i, v := range made.Output {
				if math.Abs(p.NetworkOutput[i]-v) > 1e-9 {
					t.Errorf("output %d: the server computes %v, NumPy %v", i, p.NetworkOutput[i], v)
				}
			}

			// The commands of API.md, as written, where net.npz is.
			for _, c := range commands {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				cmd := exec.CommandContext(ctx, "sh", "-c", c)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "B="+s.URL)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				cancel()
				if err != nil {
					t.Errorf("$ %s\n%v\n%s%s", c, err, out, stderr.Bytes())
					continue
				}
				var a importAnswer
				if err := json.Unmarshal(out, &a); err != nil {
					t.Errorf("$ %s\n%v: %s", c, err, out)
					continue
				}
				a.check(t, "$ "+c, l.sizes)
			}
		})
	}
}

// importAnswer is the answer to POST /api/networks/import.
type importAnswer struct {
	NetworkID    string          `json:"network_id"`
	Architecture []int           `json:"architecture"`
	Status       string          `json:"status"`
	Init         json.RawMessage `json:"init"`
	Seed         json.RawMessage `json:"seed"`
	Error        string          `json:"error"`
}

// check checks an import of a file in Nielsen's layout: a new network of
// these sizes, init and seed null (API.md).
func (a importAnswer) check(t *testing.T, what string, sizes []int) {
	t.Helper()
	if a.Error != "" || a.NetworkID == "" || a.Status != "imported" || !slices.Equal(a.Architecture, sizes) ||
		string(a.Init) != "null" || string(a.Seed) != "null" {
		t.Errorf("%s: %+v (init %s, seed %s), want %v imported with init and seed null", what, a, a.Init, a.Seed, sizes)
		return
	}
	t.Logf("%s: %s %v", what, a.NetworkID, a.Architecture)
}
