# Saves a network.py network the way docs/PYTHON.md says, for TestImportLayouts.
#
#   python3 nielsen.py SIZES DTYPE BIASES SNIPPET
#
# SIZES is a JSON list of layer sizes, DTYPE float64 or float32, BIASES column
# ((n, 1), as network.py keeps them) or flat ((n,)), SNIPPET a file holding the
# docs' code, run as it is with `np` and `net` defined, in the working
# directory. Prints a JSON object: the archive's entries, whether they are
# compressed, and the network's outputs (float64) for the pixels it prints too.
import json, sys, zipfile

import numpy as np

sizes, dtype, biases, snippet = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Network:
    """What the docs' code reads of network.py's Network: weights (n_out, n_in)
    and biases (n_out, 1) per layer, drawn as network2.py's default initialiser
    draws them (weights scaled by 1/sqrt(n_in), so outputs are not all 0 or 1)."""

    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]


np.random.seed(7)
net = Network(sizes)
net.weights = [w.astype(dtype) for w in net.weights]
net.biases = [b.astype(dtype) for b in net.biases]
if biases == "flat":
    net.biases = [b.reshape(-1) for b in net.biases]
elif biases != "column":
    sys.exit("BIASES must be column or flat, not %r" % biases)

with open(snippet) as f:
    code = f.read()
exec(compile(code, snippet, "exec"), {"np": np, "net": net})

# What the server should compute for these pixels, in float64 as it does.
pixels = [((i * 37) % 256) / 255 for i in range(sizes[0])]
a = np.array(pixels).reshape(-1, 1)
for w, b in zip(net.weights, net.biases):
    a = 1 / (1 + np.exp(-(w.astype(np.float64) @ a + b.astype(np.float64).reshape(-1, 1))))
with zipfile.ZipFile("net.npz") as z:
    infos = z.infolist()
json.dump({
    "entries": [i.filename for i in infos],
    "compressed": all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos),
    "dtypes": sorted({str(w.dtype) for w in net.weights + net.biases}),
    "pixels": pixels,
    "output": a.reshape(-1).tolist(),
}, sys.stdout)
