package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckedInKernelsAreGenerated fails when gemm_amd64.s, act_amd64.s or
// kernels_amd64.go is not what the generator writes: after an edit of
// either, run go generate ./pkg/deep (CI checks the same with git diff
// after go generate).
func TestCheckedInKernelsAreGenerated(t *testing.T) {
	for name, gen := range map[string]func() string{asmFile: generateAsm, actFile: generateAct, goFile: generateGo} {
		got, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != gen() {
			t.Errorf("%s differs from the generator's output: run go generate ./pkg/deep", name)
		}
		if first, second := gen(), gen(); first != second {
			t.Errorf("two runs of the generator differ for %s", name)
		}
	}
}
