# Prints the accuracy of a network saved by the server on MNIST's 10,000 test
# images. From the repository's root: python3 docs/examples/predict.py models/<id>.npz
# It needs a Python 3 that has NumPy (docs/PYTHON.md says which).
import gzip, json, sys

try:
    import numpy as np
except ImportError as e:  # say which Python lacks it, and how to get it
    py = sys.executable or "python3"
    print("predict.py needs NumPy, which the Python running it cannot import (%s).\n"
          "That Python is %s. Either install NumPy for it:\n"
          "    %s -m pip install numpy\n"
          "or, on Debian or Ubuntu, install the system's and run the script with it:\n"
          "    apt-get install python3-numpy\n"
          "    /usr/bin/python3 %s" % (e, py, py, " ".join(sys.argv)), file=sys.stderr)
    sys.exit(2)

z = np.load(sys.argv[1])
meta = json.loads(z["meta.json"])
# A layers network (format_version 3) lists its layers; a layer_sizes network
# is a stack of dense sigmoid layers. Layer i's arrays are w{i} and b{i}.
layers = meta.get("layers") or [{"type": "dense", "activation": "sigmoid"}
                                 for _ in meta["layer_sizes"][1:]]
arrays = {name: z[name] for name in z.files if not name.endswith(".json")}  # read once
act = {"sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}

def forward(a):  # a: images (n, 1, 28, 28), pixels in [0, 1]; returns the outputs (n, 10)
    for i, l in enumerate(layers):
        w, b = arrays.get("w%d" % i), arrays.get("b%d" % i)  # None for a pool layer
        if l["type"] == "conv":  # cross-correlation with w (filters, channels, k, k), stride 1, no padding
            win = np.lib.stride_tricks.sliding_window_view(a, w.shape[2:], axis=(2, 3))  # (n, c, y, x, k, k)
            zs = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])) + b  # (n, y, x, filters)
            a = act[l["activation"]](zs.transpose(0, 3, 1, 2))  # (n, filters, y, x)
        elif l["type"] == "pool":  # the max of each size×size block
            n, c, rows, cols = a.shape
            s = l["size"]
            a = a.reshape(n, c, rows // s, s, cols // s, s).max(axis=(3, 5))
        else:  # dense or softmax, on the inputs flattened (channel, row, column)
            zs = (1 - l.get("dropout", 0)) * (a.reshape(len(a), -1) @ w.T) + b  # dropout's inference scaling
            if l["type"] == "softmax":
                e = np.exp(zs - zs.max(axis=1, keepdims=True))
                a = e / e.sum(axis=1, keepdims=True)
            else:
                a = act[l["activation"]](zs)
    return a

with gzip.open("data/t10k-images-idx3-ubyte.gz") as f:
    X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28) / 255
with gzip.open("data/t10k-labels-idx1-ubyte.gz") as f:
    Y = np.frombuffer(f.read(), np.uint8, offset=8)
correct = 0
for i in range(0, len(Y), 200):  # 200 images at a time
    correct += int(np.sum(forward(X[i:i + 200]).argmax(axis=1) == Y[i:i + 200]))
print("accuracy %.4f (%d of %d)" % (correct / len(Y), correct, len(Y)))
