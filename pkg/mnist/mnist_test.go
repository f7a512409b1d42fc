package mnist_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mnist-go/nnserver/pkg/mnist"
)

func TestLoadEmbedded(t *testing.T) {
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		set   *mnist.Set
		n     int
		first int
	}{
		{"training", ds.Training, 50000, 5},
		{"validation", ds.Validation, 10000, 3}, // training image 50,000 is a 3
		{"test", ds.Test, 10000, 7},
	} {
		if c.set.Len() != c.n {
			t.Errorf("%s: %d images, want %d", c.name, c.set.Len(), c.n)
		}
		if got := c.set.Label(0); got != c.first {
			t.Errorf("%s: first label %d, want %d", c.name, got, c.first)
		}
	}
	// About 19% of MNIST's pixels are non-zero.
	nz := 0
	for i := range ds.Test.Len() {
		idx, val := ds.Test.Nonzero(i)
		if len(idx) != len(val) {
			t.Fatalf("image %d: %d positions, %d values", i, len(idx), len(val))
		}
		for j, p := range idx {
			if p >= mnist.Pixels || val[j] == 0 || (j > 0 && p <= idx[j-1]) {
				t.Fatalf("image %d: bad pixel %d=%d", i, p, val[j])
			}
		}
		nz += len(idx)
	}
	if frac := float64(nz) / (10000 * 784); frac < 0.15 || frac > 0.25 {
		t.Errorf("non-zero fraction %.3f, want about 0.19", frac)
	}
	// The first test image is a 7: its top rows are blank, its middle is not.
	img := ds.Test.Image(0, nil)
	if len(img) != mnist.Pixels || img[0] != 0 || bytes.Count(img, []byte{0}) == mnist.Pixels {
		t.Errorf("first test image looks wrong")
	}
}

func TestLoadDirAndFS(t *testing.T) {
	if _, err := mnist.LoadDir(filepath.Join("..", "..", "data")); err != nil {
		t.Errorf("LoadDir(data): %v", err)
	}
	if _, err := mnist.LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), mnist.TrainImagesFile) {
		t.Errorf("empty dir: got %v, want an error naming %s", err, mnist.TrainImagesFile)
	}
	// Files that parse but hold too few images for the 50k/10k/10k split.
	img, _ := os.ReadFile("testdata/images-ok.idx")
	lbl, _ := os.ReadFile("testdata/labels-ok.idx")
	fsys := fstest.MapFS{
		mnist.TrainImagesFile: {Data: img}, mnist.TrainLabelsFile: {Data: lbl},
		mnist.TestImagesFile: {Data: img}, mnist.TestLabelsFile: {Data: lbl},
	}
	if _, err := mnist.Load(fsys); err == nil || !strings.Contains(err.Error(), "holds 3 images, want 60000") {
		t.Errorf("short set: got %v", err)
	}
	fsys[mnist.TestLabelsFile] = &fstest.MapFile{Data: []byte{0, 0, 8, 1, 0, 0, 0, 2, 1, 1}}
	if _, err := mnist.Load(fsys); err == nil || !strings.Contains(err.Error(), "3 images but") {
		t.Errorf("count mismatch: got %v", err)
	}
}

func TestReadImages(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string // "" for success
	}{
		{"images-ok.idx", ""},
		{"images-ok.idx.gz", ""},
		{"images-bad-magic.idx", "bad magic number"},
		{"images-truncated.idx", "truncated"},
		{"images-bad-size.idx", "27×28"},
		{"images-huge-count.idx", "more than"},
		{"images-trailing.idx", "after the last item"},
		{"images-short-header.idx", "truncated"},
		{"images-cut.idx.gz", "truncated"},
		{"images-corrupt.idx.gz", "corrupt"},
		{"empty.idx", "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := mnist.ReadImages(f)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if s.Len() != 3 {
					t.Errorf("%d images, want 3", s.Len())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestImageRoundTrip checks that the sparse form gives back the file's pixels.
func TestImageRoundTrip(t *testing.T) {
	raw, err := os.ReadFile("testdata/images-ok.idx")
	if err != nil {
		t.Fatal(err)
	}
	s, err := mnist.ReadImages(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Len() {
		want := raw[16+i*784 : 16+(i+1)*784]
		if got := s.Image(i, nil); !bytes.Equal(got, want) {
			t.Errorf("image %d differs from the file", i)
		}
	}
}

func TestReadLabels(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{"labels-ok.idx", ""},
		{"labels-bad-magic.idx", "bad magic number"},
		{"labels-truncated.idx", "truncated"},
		{"labels-bad-value.idx", "label 1 is 12"},
		{"empty.idx", "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := mnist.ReadLabels(bytes.NewReader(raw))
			if tc.wantErr == "" {
				if err != nil || !bytes.Equal(got, []byte{5, 0, 4}) {
					t.Fatalf("got %v, %v; want [5 0 4]", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func BenchmarkLoadEmbedded(b *testing.B) {
	for b.Loop() {
		if _, err := mnist.LoadEmbedded(); err != nil {
			b.Fatal(err)
		}
	}
}
