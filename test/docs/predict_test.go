package docs

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite docs/examples/seven.png from MNIST")

// sevenPath is the digit API.md's predict examples send.
const sevenPath = "docs/examples/seven.png"

// sevenIndex is the MNIST test image drawn in seven.png: the test set's
// first image, a 7.
const sevenIndex = 0

// sevenImage draws MNIST test image sevenIndex as a person would give it to
// the predict endpoint (API.md): 280×280, black ink on white, greyscale,
// scaled up 10× bilinearly. Integer arithmetic only, so the pixels are the
// same on every platform.
func sevenImage(t *testing.T) *image.Gray {
	t.Helper()
	root := testenv.ModuleRoot(t)
	read := func(name string, header, offset, n int) []byte {
		f, err := os.Open(filepath.Join(root, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, header+offset+n)
		if _, err := io.ReadFull(z, buf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return buf[header+offset:]
	}
	if label := read("t10k-labels-idx1-ubyte.gz", 8, sevenIndex, 1)[0]; label != 7 {
		t.Fatalf("MNIST test image %d is a %d, not a 7", sevenIndex, label)
	}
	px := read("t10k-images-idx3-ubyte.gz", 16, 784*sevenIndex, 784)

	const n, k = 28, 10
	at := func(x, y int) int { return int(px[min(max(y, 0), n-1)*n+min(max(x, 0), n-1)]) }
	img := image.NewGray(image.Rect(0, 0, n*k, n*k))
	for Y := range n * k {
		for X := range n * k {
			// The centre of output pixel X is at (X + 0.5)/k − 0.5 in
			// source pixels: (2X + 1 − k) / 2k, here in 20ths.
			u, v := 2*X+1-k, 2*Y+1-k
			x0, y0 := floorDiv(u, 2*k), floorDiv(v, 2*k)
			fx, fy := u-2*k*x0, v-2*k*y0
			const w = 2 * k
			sum := (w-fx)*(w-fy)*at(x0, y0) + fx*(w-fy)*at(x0+1, y0) +
				(w-fx)*fy*at(x0, y0+1) + fx*fy*at(x0+1, y0+1)
			img.Pix[Y*img.Stride+X] = uint8(255 - (sum+w*w/2)/(w*w)) // ink is black
		}
	}
	return img
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// TestSevenPNG checks that docs/examples/seven.png is MNIST's first test
// image drawn as sevenImage draws it. `go test ./test/docs -run
// TestSevenPNG -update` writes it.
func TestSevenPNG(t *testing.T) {
	want := sevenImage(t)
	path := filepath.Join(testenv.ModuleRoot(t), sevenPath)
	if *update {
		var buf bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, want); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", sevenPath, buf.Len())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (go test ./test/docs -run TestSevenPNG -update writes it)", err)
	}
	defer f.Close()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", sevenPath, err)
	}
	g, ok := got.(*image.Gray)
	if !ok || g.Rect != want.Rect || !bytes.Equal(g.Pix, want.Pix) {
		t.Fatalf("%s is not MNIST test image %d drawn 280×280 (a %T of %v); rewrite it with -update", sevenPath, sevenIndex, got, got.Bounds())
	}
}

// TestPredictCommands runs the predict commands of docs/API.md as they are
// written, with sh in the repository's root, B set to the real server's
// address and ID to a trained network's id, and checks that each reads the
// 7 of docs/examples/seven.png. The pixels example, cut with "…" as the
// docs cut long arrays, is not run; every other command is.
func TestPredictCommands(t *testing.T) {
	e2e(t)
	testenv.Tool(t, "curl", "apt-get install curl")
	testenv.Tool(t, "base64", "coreutils")
	root := testenv.ModuleRoot(t)
	b := sectionBlock(t, "API.md", "`POST /api/networks/{network_id}/predict`", "sh")

	var cmds []string
	for _, c := range shellCommands(b.Code) {
		if strings.Contains(c, "…") {
			t.Logf("%v: not run, cut in the docs: %s", b, c)
			continue
		}
		if !strings.Contains(c, sevenPath) {
			t.Errorf("%v: %s: want the shipped %s", b, c, sevenPath)
		}
		cmds = append(cmds, c)
	}
	if len(cmds) < 2 {
		t.Fatalf("%v: want the base64 and raw-bytes commands, found %q", b, cmds)
	}

	s := startServer(t)
	id := s.trainedNetwork(t)
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "sh", "-c", c)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "B="+s.URL, "ID="+id)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Errorf("$ %s\n%v\n%s%s", c, err, out, stderr.Bytes())
			continue
		}
		var p struct {
			NetworkID      string    `json:"network_id"`
			PredictedDigit *int      `json:"predicted_digit"`
			Confidence     float64   `json:"confidence"`
			NetworkOutput  []float64 `json:"network_output"`
			ImageData      string    `json:"image_data"`
			Error          string    `json:"error"`
		}
		if err := json.Unmarshal(out, &p); err != nil || p.PredictedDigit == nil || p.Error != "" {
			t.Errorf("$ %s\nnot a prediction (%v): %s", c, err, out)
			continue
		}
		t.Logf("$ %s\n→ %d, confidence %.4f", c, *p.PredictedDigit, p.Confidence)
		if *p.PredictedDigit != 7 || p.NetworkID != id || len(p.NetworkOutput) != 10 || p.ImageData == "" {
			t.Errorf("$ %s\nwant a 7 from network %s, got %s", c, id, fmt.Sprintf("%.300s", out))
		}
	}
}
