# Writes numpy.npz, a network file made the way a data scientist would with
# NumPy and zipfile, so the Go tests prove Load reads NumPy's own output
# (its NPY headers and its zip layout, which uses zip64 extra fields).
# Run from this directory: python3 numpy_fixture.py
import json
import zipfile

import numpy as np

w0 = np.arange(12, dtype=np.float64).reshape(3, 4) / 8  # shape (3, 4)
b0 = np.array([0.5, -1.0, 2.0])
w1 = np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5
b1 = np.array([1e-300, -0.0])
np.savez("numpy.npz", w0=w0, b0=b0, w1=w1, b1=b1)

with zipfile.ZipFile("numpy.npz", "a") as z:
    z.writestr("meta.json", json.dumps({
        "format_version": 1,
        "id": "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f",
        "layer_sizes": [4, 3, 2],
        "trained": False,
        "accuracy": None,
        "epochs_trained": 0,
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:30:00.5+02:00",
    }))
