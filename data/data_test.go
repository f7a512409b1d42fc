package data

import (
	"crypto/md5"
	"encoding/hex"
	"testing"
)

// TestCanonicalFiles checks the embedded files against the md5 sums of the
// canonical MNIST distribution (Yann LeCun's four .gz files).
func TestCanonicalFiles(t *testing.T) {
	want := map[string]string{
		"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
		"train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
		"t10k-images-idx3-ubyte.gz":  "9fb629c4189551a2d022fa330f9573f3",
		"t10k-labels-idx1-ubyte.gz":  "ec29112dd5afa0611ce80d1b7f02629c",
	}
	entries, err := MNIST.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%d files embedded, want %d", len(entries), len(want))
	}
	for name, sum := range want {
		b, err := MNIST.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := md5.Sum(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: md5 %x, want %s", name, got, sum)
		}
	}
}
