# Prints the accuracy of a network saved by the server on MNIST's 10,000 test
# images. From the repository's root: python3 docs/examples/predict.py models/<id>.npz
# It needs a Python 3 that has NumPy (docs/PYTHON.md says which).
import gzip, sys

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
net = [(z["w%d" % l], z["b%d" % l].reshape(-1, 1))  # weights (n_out, n_in), biases as columns
       for l in range(sum(name.startswith("w") for name in z.files))]
with gzip.open("data/t10k-images-idx3-ubyte.gz") as f:
    X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784, 1) / 255
with gzip.open("data/t10k-labels-idx1-ubyte.gz") as f:
    Y = np.frombuffer(f.read(), np.uint8, offset=8)
correct = 0
for a, y in zip(X, Y):  # a: one image, a column of 784 pixels in [0, 1]
    for w, b in net:
        a = 1 / (1 + np.exp(-(w @ a + b)))  # the sigmoid
    correct += int(np.argmax(a) == y)
print("accuracy %.4f (%d of %d)" % (correct / len(Y), correct, len(Y)))
