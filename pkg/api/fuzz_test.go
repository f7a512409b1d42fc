package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/service"
)

func fuzzContext(body []byte, contentType string) (*gin.Context, *httptest.ResponseRecorder) {
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodPost, "/api/networks", bytes.NewReader(body))
	if contentType != "" {
		c.Request.Header.Set("Content-Type", contentType)
	}
	return c, w
}

// checkRejection asserts that a refused request was answered 4xx with a
// one-field JSON error.
func checkRejection(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code < 400 || w.Code > 499 {
		t.Fatalf("rejected with status %d", w.Code)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 || body["error"] == "" {
		t.Fatalf("rejection body %q", w.Body.String())
	}
}

func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"layer_sizes":[784,30,10]}`, `{"layer_sizes":[784,30.0,10]}`, `{"layer_sizes":[784,30.5,10]}`,
		`{"layer_sizes":[784,1e300,10]}`, `{"layer_sizes":"784"}`, `[1,2]`, `{"layer_sizes":[784,null]}`, `{} x`,
		`{"layer_sizes":[784,-0,10]}`, `{"layer_sizes":[784,9223372036854775807,10]}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	lim := service.DefaultLimits()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		c, w := fuzzContext(body, contentType)
		p, ok := decodeCreate(c, lim)
		if !ok {
			checkRejection(t, w)
			return
		}
		arch := p.Arch
		if _, err := lim.NewArchitecture(arch); err != nil || lim.ValidateCreate(p) != nil {
			t.Fatalf("accepted %v, which the limits refuse: %v", arch, err)
		}
		if arch[0] != mnist.Pixels || arch[len(arch)-1] != mnist.Classes {
			t.Fatalf("accepted %v", arch)
		}
	})
}

func FuzzDecodeTrain(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"epochs":5,"mini_batch_size":10,"learning_rate":3.0}`, `{"epochs":5.0}`, `{"epochs":"5"}`,
		`{"learning_rate":1e400}`, `{"learning_rate":-1e-400}`, `{"mini_batch_size":50000}`, `{"epochs":1e19}`,
		`{"epochs":-9223372036854775808}`, `{"learning_rate":"NaN"}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	lim := service.DefaultLimits()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		c, w := fuzzContext(body, contentType)
		p, ok := decodeTrain(c, lim)
		if !ok {
			checkRejection(t, w)
			return
		}
		if err := lim.ValidateTrain(p.WithDefaults()); err != nil {
			t.Fatalf("accepted %+v, which the limits refuse: %v", p, err)
		}
	})
}
