package docs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
