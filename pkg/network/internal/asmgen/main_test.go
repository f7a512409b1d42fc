package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckedInKernelsAreGenerated fails when kernels_amd64.s is not what
// the generator writes: after an edit of either, run go generate in
// pkg/network (CI checks the same with git diff after go generate).
func TestCheckedInKernelsAreGenerated(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("..", "..", output))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != generate() {
		t.Errorf("%s differs from the generator's output: run go generate ./pkg/network/...", output)
	}
	if first, second := generate(), generate(); first != second {
		t.Error("two runs of the generator differ")
	}
}
