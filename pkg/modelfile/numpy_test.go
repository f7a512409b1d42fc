package modelfile

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// numpyCheck loads an .npz with NumPy and checks that re-saving every array
// with np.save gives exactly the bytes of our entry, header and data: NumPy
// reads our files, and reads them as the arrays we meant. It also reads
// meta.json and history.json as np.load returns them (bytes), and checks
// that the seed, above 2^53, survives exactly.
const numpyCheck = `
import json, io, sys, zipfile
import numpy as np

path, seed = sys.argv[1], int(sys.argv[2])
raw = zipfile.ZipFile(path)
with np.load(path) as z:
    meta = json.loads(z["meta.json"])
    history = json.loads(z["history.json"])
    assert meta["seed"] == seed, ("seed", meta["seed"], seed)
    assert len(history) == meta["history_records"], ("history", len(history), meta["history_records"])
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1)), history
    sizes = meta["layer_sizes"]
    for l in range(len(sizes) - 1):
        for name, shape in (("w%d" % l, (sizes[l + 1], sizes[l])), ("b%d" % l, (sizes[l + 1],))):
            a = z[name]
            assert a.dtype == np.float64 and a.shape == shape, (name, a.dtype, a.shape)
            buf = io.BytesIO()
            np.save(buf, a)
            assert buf.getvalue() == raw.read(name + ".npy"), name + ": np.save writes other bytes"
print("ok", meta["id"], sizes)
`

// python returns a Python interpreter that has NumPy. Without one it skips
// t, except in CI (the environment variable CI is set, as CI runners do):
// there a skipped interop test would pass unnoticed, so it fails.
func python(t *testing.T) string {
	t.Helper()
	// The python3 on PATH may be a virtual environment without NumPy while
	// the system's has it.
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import numpy").Run() == nil {
			return py
		}
	}
	testutil.SkipOrFail(t, "no python3 with numpy installed (apt-get install python3-numpy)")
	return ""
}

func TestNumPyReadsSavedFile(t *testing.T) {
	py := python(t)
	for _, sizes := range [][]int{{784, 30, 10}, {784, 17, 5, 10}, {1, 1}} {
		m := newMeta(newID(), sizes)
		path := filepath.Join(t.TempDir(), m.ID+".npz")
		putFile(t, path, saved(t, m, newNet(t, sizes, 5)))
		out, err := exec.Command(py, "-c", numpyCheck, path, fmt.Sprint(*m.Seed)).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "ok "+m.ID) {
			t.Errorf("%v: NumPy: %v\n%s", sizes, err, out)
		}
	}
}
