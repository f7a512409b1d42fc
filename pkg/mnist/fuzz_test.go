package mnist_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mnist-go/nnserver/pkg/mnist"
)

func addTestdata(f *testing.F, pattern string) {
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzReadImages(f *testing.F) {
	addTestdata(f, "images-*")
	addTestdata(f, "empty.idx")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := mnist.ReadImages(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := range s.Len() {
			idx, val := s.Nonzero(i)
			if len(idx) != len(val) {
				t.Fatalf("image %d: %d positions, %d values", i, len(idx), len(val))
			}
			for j, p := range idx {
				if p >= mnist.Pixels || val[j] == 0 {
					t.Fatalf("image %d: pixel %d = %d", i, p, val[j])
				}
			}
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	addTestdata(f, "labels-*")
	f.Fuzz(func(t *testing.T, b []byte) {
		labels, err := mnist.ReadLabels(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i, l := range labels {
			if l > 9 {
				t.Fatalf("label %d is %d", i, l)
			}
		}
	})
}
