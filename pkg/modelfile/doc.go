// Package modelfile is the model file format: how a network and its
// description are written as bytes, and read back, whatever keeps the bytes.
//
// Encode writes a network as an archive, Decode and DecodeEntry read one from
// any io.ReaderAt, and Import reads networks made elsewhere (ours, or Michael
// Nielsen's network.py's saved with NumPy). Limits are the operator's bounds
// on what is written and read; CheckID says which ids a network may have.
// The adapters that keep the bytes (pkg/dirstore in a directory,
// pkg/s3store in a bucket) store exactly what Encode writes.
//
// Each network is one NumPy .npz archive (an adapter names it <id>.npz),
// which a data scientist can open with np.load (docs/PYTHON.md shows how).
// Its entries, in this order:
//
//	meta.json     the description (below)
//	history.json  a JSON array of every epoch trained (EpochRecord), one a line
//	w0.npy ...    layer l's weights, shape (sizes[l+1], sizes[l]): one row per neuron
//	b0.npy ...    layer l's biases, shape (sizes[l+1],)
//
// The arrays are NPY files of little-endian float64 ('<f8') in C order,
// stored uncompressed as np.savez writes them (Decode also reads deflated
// entries, as np.savez_compressed writes them). The .json entries are not
// arrays: np.load returns their bytes. meta.json's fields:
//
//	format_version   2 (version 1 files, without init, seed, history_records
//	                 and history.json, are still read)
//	id               the network's id, the file's name without ".npz"
//	layer_sizes      [784, 30, 10]
//	init             "normal", "scaled" or "" (unknown)
//	seed             the seed the network was made with (an exact integer up
//	                 to 2^64-1), or null
//	trained          true once an epoch of training has finished
//	accuracy         test-set accuracy between 0 and 1, or null
//	epochs_trained   epochs completed, over all training jobs
//	history_records  the records in history.json, at most MaxHistory
//	created_at       RFC 3339 time, UTC, to the nanosecond
//	updated_at       RFC 3339 time, UTC, to the nanosecond
//	name, notes      optional: what people call the network (at most 100
//	                 characters, one line) and note of it (at most 2,000)
//
// A layers network (pkg/deep: conv, pool, dense, softmax) is written as
// format_version 3: meta.json has the keys of version 2 plus layers, the
// list as created ([{"type": "conv", "filters": 20, "size": 5,
// "activation": "relu"}, {"type": "pool", "size": 2}, {"type": "dense",
// "size": 100, "activation": "relu", "dropout": 0.5}, {"type": "softmax",
// "size": 10, "dropout": 0}]), and layer_sizes the flattened size of the
// input and of each layer's output. Its arrays are named by the layer's
// index in layers, for every layer with parameters (pool layers have none):
// w<i>.npy shaped [filters, channels, k, k] for conv (PyTorch's layout,
// cross-correlation), [out, in] for dense and softmax (in: the previous
// output flattened in C order), and b<i>.npy [filters] or [out]. Its
// layers are checked with deep.Plan against Limits (MaxLayers bounds the
// list's length; MaxParams, MaxMACs, MaxActivations) before any array is
// read.
//
// A record of history.json may carry restored_from (optional): it records
// a restore of the snapshot after that earlier epoch, not an epoch of
// training.
//
// Every file read is treated as hostile: its headers are checked against
// each other and against the operator's Limits before anything is allocated
// or inflated, no entry is read past the size the zip directory records for
// it, and every entry's CRC-32 is checked.
package modelfile
