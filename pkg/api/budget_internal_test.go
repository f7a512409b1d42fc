package api

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/service"
)

// TestBodyReservationsAreUpperBounds: what reading the worst JSON bodies
// allocates (all of it: an upper bound of what is held at once) is within
// what a JSON body reserves, bodyBase + jsonReadFactor per byte.
func TestBodyReservationsAreUpperBounds(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 700_000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	b64 := base64.StdEncoding.EncodeToString(noise)
	escaped := strings.Repeat(`\u00e9`, 170_000)                                  // a string whose every character is an escape
	deep := strings.Repeat("[", maxNesting-2) + strings.Repeat("]", maxNesting-2) // with the object and "x": maxNesting deep
	var keys strings.Builder
	keys.WriteString("{")
	for i := range 60_000 {
		if i > 0 {
			keys.WriteString(",")
		}
		keys.WriteString(`"k":1`)
	}
	keys.WriteString("}")
	lim := service.DefaultLimits()
	for _, tc := range []struct {
		name string
		body string
		read func(c *gin.Context)
	}{
		{"a base64 image of ~1 MB", `{"image":"` + b64 + `"}`, func(c *gin.Context) {
			var image field[string]
			readObject(c, func(key string, v *valueReader) error {
				return readScalar(v, &image, asString, nil)
			})
			if _, err := base64.StdEncoding.DecodeString(image.val); err != nil {
				t.Fatal(err)
			}
		}},
		{"a string of escapes", `{"init":"` + escaped + `"}`, func(c *gin.Context) { decodeCreate(c, lim) }},
		{"numbers", `{"layer_sizes":[` + strings.Repeat("123456789.5e-3,", 60_000) + `1]}`, func(c *gin.Context) { decodeCreate(c, lim) }},
		{"nested lists", `{"x":[` + strings.Repeat(deep+",", 15_000) + `1]}`, func(c *gin.Context) { decodeTrain(c, lim) }},
		{"many keys", keys.String(), func(c *gin.Context) { decodeTrain(c, lim) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if len(body) > MaxBodyBytes {
				t.Fatalf("a body of %d bytes, more than a request may have", len(body))
			}
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest("POST", "/", bytes.NewReader(body))
			c.Request.Header.Set("Content-Type", "application/json")
			debug.SetGCPercent(-1)
			defer debug.SetGCPercent(100)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tc.read(c)
			runtime.ReadMemStats(&after)
			got := int64(after.TotalAlloc - before.TotalAlloc)
			reserved := int64(bodyBase + jsonReadFactor*len(body))
			t.Logf("%d bytes of body: %d allocated, %d reserved (%d: %s)", len(body), got, reserved, w.Code, truncate(w.Body.String(), 80))
			if got > reserved {
				t.Errorf("reading a %d-byte body allocated %d bytes, more than the %d it reserves", len(body), got, reserved)
			}
		})
	}
}
