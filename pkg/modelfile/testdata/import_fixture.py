# Writes import/*: networks saved the way a data scientist with Michael
# Nielsen's network.py would save them with NumPy, good and bad, so the Go
# tests prove Import reads NumPy's own output. The files are committed: the
# tests do not need Python.
# Run from this directory: python3 import_fixture.py
import numpy as np

# A 4-3-2 network in network.py's orientation: weights (n_out, n_in),
# biases (n_out, 1). Every value is exact in float32 too.
w = [np.arange(12, dtype=np.float64).reshape(3, 4) / 8,
     np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5]
b = [np.array([[0.5], [-1.0], [2.0]]), np.array([[0.25], [-0.0]])]


def arrays(ws, bs, first=0):
    d = {}
    for l, (wl, bl) in enumerate(zip(ws, bs)):
        d["weights_%d" % (l + first)] = wl
        d["biases_%d" % (l + first)] = bl
    return d


np.savez("import/nielsen.npz", **arrays(w, b))
np.savez_compressed("import/nielsen_compressed.npz", **arrays(w, b))
np.savez("import/nielsen_float32.npz", **arrays([x.astype(np.float32) for x in w], [x.astype(np.float32) for x in b]))
# Numbered from 1, biases flat (n_out,).
np.savez("import/nielsen_from_1_flat_biases.npz", **arrays(w, [x.ravel() for x in b], first=1))

# The second layer's weights take 4 inputs; the first layer has 3 outputs.
np.savez("import/wrong_chain.npz", **arrays([w[0], np.zeros((2, 4))], b))
nan = [b[0].copy(), b[1]]
nan[0][1, 0] = np.nan
np.savez("import/nan.npz", **arrays(w, nan))
# One array saved with np.save: an .npy file, not an .npz archive.
np.save("import/not_npz.npy", w[0])
# A zip bomb: 44 MB of zeros compress to 43 KB; 784-7000-10 has 5,565,010
# parameters, over the default limit of 5,000,000.
np.savez_compressed("import/bomb.npz", **arrays(
    [np.zeros((7000, 784)), np.zeros((10, 7000))], [np.zeros((7000, 1)), np.zeros((10, 1))]))
