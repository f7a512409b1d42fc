package api

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/budget"
)

// TestBusyAnswers: with every image-decoding or import slot taken, those
// requests are refused with 503 and Retry-After once their bodies are read
// (a client sending slowly holds no slot: TestSlotsAfterTheBody).
func TestBusyAnswers(t *testing.T) {
	cpu := budget.NewCPU(1, 0)
	r, h, err := build(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CPU: cpu})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cpu.Take(t.Context()); err != nil { // the one CPU slot, busy
		t.Fatal(err)
	}
	for range maxImports {
		h.imports <- struct{}{}
	}
	id := "9b2c6f1e-4a7d-4c3e-8f5a-1d2e3f4a5b6c"
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 28, 28))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, ct, body string }{
		{"/api/networks/" + id + "/predict", "image/png", img.String()},
		{"/api/networks/" + id + "/predict", "application/json", `{"image":"` + base64.StdEncoding.EncodeToString(img.Bytes()) + `"}`},
		{"/api/networks/import", "application/octet-stream", "PK"},
	} {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ct)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "try again") {
			t.Errorf("%s %s: %d %v %s", tc.ct, tc.path, w.Code, w.Header(), w.Body)
		}
	}
}
