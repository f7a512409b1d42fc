package api

// The contract test of openapi.json, with kin-openapi: the document is
// valid OpenAPI 3 with valid examples, it describes exactly the router's
// routes, its request schemas state the service's defaults and limits, and
// the real server's answers (and Socket.IO events) validate against it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/live"
	"github.com/mnist-go/nnserver/pkg/metrics"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// loadOpenAPI loads the embedded document and validates it, examples
// included. If strict, every object schema with properties is then closed
// (additionalProperties: false) and the document validated again: examples
// and, in the contract test, the server's answers may then carry no field
// the document does not describe. The served document stays open, so that
// clients accept the fields added later.
func loadOpenAPI(t *testing.T, strict bool) *openapi3.T {
	t.Helper()
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	if !strict {
		return doc
	}
	closeSchemas(doc)
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json: an example has a field its schema does not describe: %v", err)
	}
	return doc
}

// closeSchemas sets additionalProperties: false on every object schema of doc
// that lists properties.
func closeSchemas(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, x := range list {
				walk(x)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	for _, p := range doc.Components.Parameters {
		walk(p.Value.Schema)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Value.Content {
					walk(mt.Schema)
				}
			}
			for _, r := range op.Responses.Map() {
				for _, mt := range r.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

var (
	oaGinParam = regexp.MustCompile(`[:*][^/]+`)
	oaDocParam = regexp.MustCompile(`\{[^/}]+\}`)
)

// TestOpenAPIMatchesRouter checks that the document describes exactly the
// router's routes under /api/ and /metrics, in both directions, and a head
// operation for every get (headAsGet answers HEAD like GET).
func TestOpenAPIMatchesRouter(t *testing.T) {
	engine, err := newEngine(Options{Service: docService(t), Logger: discardLog(), Metrics: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") && r.Path != "/metrics" {
			continue
		}
		p := oaGinParam.ReplaceAllString(r.Path, "{}")
		routes[r.Method+" "+p] = true
		if r.Method == http.MethodGet {
			routes["HEAD "+p] = true
		}
	}
	if len(routes) == 0 {
		t.Fatal("the router has no /api/ routes")
	}
	documented := map[string]bool{}
	for p, item := range loadOpenAPI(t, false).Paths.Map() {
		for m := range item.Operations() {
			documented[m+" "+oaDocParam.ReplaceAllString(p, "{}")] = true
		}
	}
	for _, r := range slices.Sorted(maps.Keys(routes)) {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(documented)) {
		if !routes[d] {
			t.Errorf("openapi.json documents %s, which the router does not have", d)
		}
	}
}

// TestOpenAPIDocument checks what the loader does not: unique
// operationIds, error answers shaped as errors, and the request schemas'
// defaults and maxima equal to the service's.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t, true)
	ids := map[string]string{}
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			where := m + " " + p
			if prev, dup := ids[op.OperationID]; dup || op.OperationID == "" {
				t.Errorf("%s: operationId %q missing or also used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			if op.Responses.Status(http.StatusOK) == nil {
				t.Errorf("%s: no 200 answer", where)
			}
			for code, r := range op.Responses.Map() {
				if code < "400" || m == http.MethodHead {
					continue
				}
				s := r.Value.Content.Get("application/json")
				if s == nil || s.Schema == nil || s.Schema.Value.Properties["error"] == nil {
					t.Errorf("%s %s: an error answer must be JSON with an error field", where, code)
				}
			}
		}
	}

	schema := func(name string) *openapi3.Schema {
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Fatalf("components/schemas has no %s", name)
		}
		return s.Value
	}
	def, lim := service.DefaultTrainParams(), service.DefaultLimits()
	train := schema("TrainRequest").Properties
	for field, want := range map[string][2]any{
		service.FieldEpochs:       {float64(def.Epochs), float64(lim.MaxEpochs)},
		service.FieldMiniBatch:    {float64(def.MiniBatch), float64(lim.MaxBatchSize)},
		service.FieldLearningRate: {def.LearningRate, lim.MaxLearningRate},
		service.FieldLambda:       {def.Lambda, lim.MaxLambda},
		service.FieldCost:         {string(def.Cost), nil},
		service.FieldSeed:         {nil, float64(service.MaxSeed)},
	} {
		p := train[field]
		if p == nil {
			t.Errorf("TrainRequest has no %s", field)
			continue
		}
		var gotMax any
		if p.Value.Max != nil {
			gotMax = *p.Value.Max
		}
		if p.Value.Default != want[0] || gotMax != want[1] {
			t.Errorf("TrainRequest.%s: default %v maximum %v, want %v and %v", field, p.Value.Default, gotMax, want[0], want[1])
		}
	}
	if got := slices.Sorted(maps.Keys(train)); !slices.Equal(got, []string{"cost", "epochs", "expand", "lambda", "learning_rate", "mini_batch_size",
		"restore_best", "seed", "stop_after_no_improvement"}) {
		t.Errorf("TrainRequest has %v: the fields decodeTrain reads are epochs, mini_batch_size, learning_rate, cost, lambda, seed, stop_after_no_improvement, restore_best and expand", got)
	}
	if m := train[service.FieldStopAfter].Value.Max; m == nil || *m != float64(lim.MaxEpochs) {
		t.Errorf("TrainRequest.stop_after_no_improvement: maximum %v, want %d", m, lim.MaxEpochs)
	}

	create := schema("CreateNetworkRequest").Properties
	layers := create[service.FieldLayerSizes].Value
	var arch []int
	for _, v := range layers.Default.([]any) {
		arch = append(arch, int(v.(float64)))
	}
	if !slices.Equal(arch, service.DefaultArchitecture()) || layers.MaxItems == nil || *layers.MaxItems != uint64(lim.MaxLayers) {
		t.Errorf("CreateNetworkRequest.layer_sizes: default %v maxItems %v, want %v and %d", arch, layers.MaxItems, service.DefaultArchitecture(), lim.MaxLayers)
	}
	if d := create[service.FieldInit].Value.Default; d != string(service.DefaultCreateParams().Init) {
		t.Errorf("CreateNetworkRequest.init: default %v, want %s", d, service.DefaultCreateParams().Init)
	}
	if m := create[service.FieldSeed].Value.Max; m == nil || *m != service.MaxSeed {
		t.Errorf("CreateNetworkRequest.seed: maximum %v, want %d", m, service.MaxSeed)
	}
	if got := slices.Sorted(maps.Keys(create)); !slices.Equal(got, []string{"init", "layer_sizes", "layers", "name", "notes", "seed"}) {
		t.Errorf("CreateNetworkRequest has %v, want init, layer_sizes, layers, name, notes and seed", got)
	}
	if m := create[service.FieldLayers].Value.MaxItems; m == nil || *m != uint64(lim.MaxLayers) {
		t.Errorf("CreateNetworkRequest.layers: maxItems %v, want %d", m, lim.MaxLayers)
	}
	for _, s := range []string{"CreateNetworkRequest", "LabelRequest", "NetworkInfo"} {
		props := schema(s).Properties
		if m := props[service.FieldName].Value.MaxLength; m == nil || *m != modelfile.MaxNameLength {
			t.Errorf("%s.name: maxLength %v, want %d", s, m, modelfile.MaxNameLength)
		}
		if m := props[service.FieldNotes].Value.MaxLength; m == nil || *m != modelfile.MaxNotesLength {
			t.Errorf("%s.notes: maxLength %v, want %d", s, m, modelfile.MaxNotesLength)
		}
	}
	if px := schema("PredictRequest").Properties["pixels"].Value; px.MinItems != mnist.Pixels || px.MaxItems == nil || *px.MaxItems != mnist.Pixels {
		t.Errorf("PredictRequest.pixels: minItems %d maxItems %v, want %d", px.MinItems, px.MaxItems, mnist.Pixels)
	}
	if m := schema("Evaluation").Properties["most_confident_mistakes"].Value.MaxItems; m == nil || *m != service.MaxMistakes {
		t.Errorf("Evaluation.most_confident_mistakes: maxItems %v, want %d", m, service.MaxMistakes)
	}
}

// TestOpenAPIServed checks that GET /api/openapi.json answers the embedded
// document byte for byte, as JSON, readable from any origin (Swagger UI on
// another origin reads it), and that a cross-origin preflight passes.
func TestOpenAPIServed(t *testing.T) {
	h, err := New(Options{Service: docService(t), Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: %d %s", w.Code, w.Body)
	}
	if mt, _, err := mime.ParseMediaType(w.Header().Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("Content-Type %q, want application/json", w.Header().Get("Content-Type"))
	}
	if !bytes.Equal(w.Body.Bytes(), openAPI) {
		t.Errorf("served %d bytes, not the embedded document (%d bytes)", w.Body.Len(), len(openAPI))
	}

	req = httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil)
	req.Header.Set("Origin", "https://editor.swagger.io")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Header().Get("Access-Control-Allow-Origin"); w.Code != http.StatusOK || got != "*" {
		t.Errorf("cross-origin GET: %d, Access-Control-Allow-Origin %q, want 200 and *", w.Code, got)
	}

	req = httptest.NewRequest(http.MethodOptions, "/api/networks", nil)
	req.Header.Set("Origin", "http://localhost:4200")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	allowed := strings.ToLower(w.Header().Get("Access-Control-Allow-Headers"))
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(allowed, "content-type") || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight of a cross-origin JSON POST: %d %v", w.Code, w.Header())
	}
}

// TestOpenAPIResponses drives the real router, on a real service with the
// embedded MNIST, through every documented operation and the main error
// answers, and validates every request that succeeds and every answer
// against the document (closed: no undocumented field), and every Socket.IO
// event against its schema. It fails if a documented operation, or an
// event, was never seen.
func TestOpenAPIResponses(t *testing.T) {
	if testing.Short() {
		t.Skip("trains networks")
	}
	c := newContract(t)
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	const jsonCT = "application/json"
	unknown := "00000000-0000-4000-8000-000000000000"

	// Status, this document, metrics.
	c.check("GET", "/api/status", "", nil, 200)
	c.check("HEAD", "/api/status", "", nil, 200)
	c.check("GET", "/api/ready", "", nil, 200)
	c.check("HEAD", "/api/ready", "", nil, 200)
	if r := c.check("GET", "/api/openapi.json", "", nil, 200); !bytes.Equal(r.body, openAPI) {
		t.Error("GET /api/openapi.json is not the embedded document")
	}
	c.check("HEAD", "/api/openapi.json", "", nil, 200)

	// Create, and its errors.
	a := c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,30,10],"init":"scaled","seed":7}`), 200).field(t, "network_id")
	b := c.check("POST", "/api/networks", "", nil, 200).field(t, "network_id")
	c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,30,9]}`), 400)
	c.check("POST", "/api/networks", jsonCT, []byte(`{"init":"uniform"}`), 400)
	c.check("POST", "/api/networks", "text/plain", []byte(`{}`), 415)
	c.check("POST", "/api/networks", jsonCT, []byte(`{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), 413)
	c.check("GET", "/api/networks", "", nil, 200)
	c.check("HEAD", "/api/networks", "", nil, 200)

	// Train, seeded, to the end; the job as it goes.
	train := func(id, body string) string {
		return c.check("POST", "/api/networks/"+id+"/train", jsonCT, []byte(body), 200).field(t, "job_id")
	}
	jobA := train(a, `{"epochs":2,"mini_batch_size":10,"learning_rate":3.0,"seed":1,"stop_after_no_improvement":1,"restore_best":true}`)
	c.waitJob(jobA, func(s string) bool { return s == "completed" })
	c.check("POST", "/api/networks/"+a+"/train", jsonCT, []byte(`{"stop_after_no_improvement":0}`), 400)
	c.check("POST", "/api/networks/"+a+"/train", jsonCT, []byte(`{"restore_best":"yes"}`), 400)
	c.check("HEAD", "/api/training/"+jobA, "", nil, 200)
	c.check("POST", "/api/networks/"+a+"/train", jsonCT, []byte(`{"epochs":0}`), 400)
	c.check("POST", "/api/networks/"+a+"/train", jsonCT, []byte(`{"cost":"hinge"}`), 400)
	c.check("POST", "/api/networks/"+unknown+"/train", jsonCT, []byte(`{}`), 404)
	c.check("POST", "/api/networks/NOT-A-UUID/train", jsonCT, []byte(`{}`), 404)
	c.check("POST", "/api/networks/"+a+"/train", "application/x-www-form-urlencoded", []byte(`epochs=1`), 415)
	c.check("POST", "/api/networks/"+a+"/train", jsonCT, []byte(`{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), 413)
	c.check("GET", "/api/training/"+unknown, "", nil, 404)
	c.check("GET", "/api/training/not-a-uuid", "", nil, 404)
	c.check("POST", "/api/training/"+jobA+"/cancel", "", nil, 409)
	c.check("POST", "/api/training/"+unknown+"/cancel", "", nil, 404)

	// What the network makes of digits.
	for _, kind := range []string{"successful_example", "unsuccessful_example"} {
		c.check("GET", "/api/networks/"+a+"/"+kind, "", nil, 200)
		c.check("HEAD", "/api/networks/"+a+"/"+kind, "", nil, 200)
		c.check("GET", "/api/networks/"+unknown+"/"+kind, "", nil, 404)
	}
	px := ds.Test.Image(0, nil)
	pixels, _ := json.Marshal(map[string][]float64{"pixels": scalePixels(px)})
	c.check("POST", "/api/networks/"+a+"/predict", jsonCT, pixels, 200)
	c.check("POST", "/api/networks/"+a+"/predict", "image/png", drawDigit(t, px), 200)
	c.check("POST", "/api/networks/"+a+"/predict", jsonCT, []byte(`{}`), 400)
	c.check("POST", "/api/networks/"+a+"/predict", jsonCT, []byte(`{"pixels":[0.5,0.5,0.5]}`), 400)
	c.check("POST", "/api/networks/"+a+"/predict", "text/plain", []byte(`7`), 415)
	c.check("POST", "/api/networks/"+a+"/predict", "image/png", make([]byte, 1<<20+1), 413)
	c.check("POST", "/api/networks/"+unknown+"/predict", jsonCT, pixels, 404)
	for _, p := range []string{"/history", "/evaluation", "/evaluation/examples?actual=4&predicted=9", "/download"} {
		c.check("GET", "/api/networks/"+a+p, "", nil, 200)
		c.check("HEAD", "/api/networks/"+a+p, "", nil, 200)
		c.check("GET", "/api/networks/"+unknown+p, "", nil, 404)
	}
	c.check("GET", "/api/networks/"+a+"/evaluation/examples?actual=four&predicted=9", "", nil, 400)
	c.check("GET", "/api/networks/"+a+"/evaluation/examples?actual=12&predicted=9", "", nil, 400)
	c.check("GET", "/api/networks/"+a+"/history?from_epoch=2&limit=1", "", nil, 200)
	c.check("GET", "/api/networks/"+a+"/history?limit=10001", "", nil, 400)
	c.check("GET", "/api/networks/"+a+"/access", "", nil, 200)
	c.check("HEAD", "/api/networks/"+a+"/access", "", nil, 200)
	c.check("GET", "/api/networks/"+unknown+"/access", "", nil, 404)

	// A conv network's first kernels; a network without a conv layer has none.
	conv := c.check("POST", "/api/networks", jsonCT, []byte(`{"layers":[{"type":"conv","filters":2,"size":5,"activation":"relu"},{"type":"pool","size":2},{"type":"softmax","size":10}],"seed":3}`), 200).field(t, "network_id")
	c.check("GET", "/api/networks/"+conv+"/kernels", "", nil, 200)
	c.check("HEAD", "/api/networks/"+conv+"/kernels", "", nil, 200)
	c.check("GET", "/api/networks/"+a+"/kernels", "", nil, 404)
	c.check("HEAD", "/api/networks/"+unknown+"/kernels", "", nil, 404)
	c.check("DELETE", "/api/networks/"+conv, "", nil, 200)

	// One network: its name and notes, its snapshots, a restore.
	c.check("GET", "/api/networks/"+a, "", nil, 200)
	c.check("HEAD", "/api/networks/"+a, "", nil, 200)
	c.check("GET", "/api/networks/"+unknown, "", nil, 404)
	c.check("PATCH", "/api/networks/"+a, jsonCT, []byte(`{"name":"ch. 3 ✓","notes":"two epochs\nseeded"}`), 200)
	c.check("PATCH", "/api/networks/"+a, jsonCT, []byte(`{"notes":""}`), 200)
	c.check("PATCH", "/api/networks/"+a, jsonCT, []byte(`{}`), 400)
	c.check("PATCH", "/api/networks/"+a, jsonCT, []byte(`{"name":"`+strings.Repeat("n", 101)+`"}`), 400)
	c.check("PATCH", "/api/networks/"+unknown, jsonCT, []byte(`{"name":"x"}`), 404)
	c.check("PATCH", "/api/networks/"+a, "text/plain", []byte(`{"name":"x"}`), 415)
	c.check("PATCH", "/api/networks/"+a, jsonCT, []byte(`{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), 413)
	c.check("GET", "/api/networks/"+a+"/snapshots", "", nil, 200)
	c.check("HEAD", "/api/networks/"+a+"/snapshots", "", nil, 200)
	c.check("GET", "/api/networks/"+unknown+"/snapshots", "", nil, 404)
	c.check("GET", "/api/networks/"+a+"/download?epoch=1", "", nil, 200)
	c.check("HEAD", "/api/networks/"+a+"/download?epoch=1", "", nil, 200)
	c.check("GET", "/api/networks/"+a+"/download?epoch=0", "", nil, 400)
	c.check("GET", "/api/networks/"+a+"/download?epoch=99", "", nil, 404)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{"epoch":1}`), 200)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{"best":true}`), 200)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{}`), 400)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{"epoch":1,"best":true}`), 400)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{"epoch":99}`), 404)
	c.check("POST", "/api/networks/"+unknown+"/restore", jsonCT, []byte(`{"best":true}`), 404)
	c.check("POST", "/api/networks/"+a+"/restore", "text/plain", []byte(`{"best":true}`), 415)
	c.check("POST", "/api/networks/"+a+"/restore", jsonCT, []byte(`{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), 413)

	// Download and import, raw and as a form.
	file := c.check("GET", "/api/networks/"+a+"/download", "", nil, 200).body
	imported := c.check("POST", "/api/networks/import?name=imported&notes=from+a+file", "application/octet-stream", file, 200).field(t, "network_id")
	c.check("POST", "/api/networks/import?name="+strings.Repeat("n", 101), "application/octet-stream", file, 400)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "net.npz")
	fw.Write(file)
	mw.Close()
	c.check("POST", "/api/networks/import", mw.FormDataContentType(), form.Bytes(), 200)
	c.check("POST", "/api/networks/import", "application/octet-stream", []byte("not a model file"), 400)
	c.check("POST", "/api/networks/import", "application/octet-stream", nil, 400)
	c.check("POST", "/api/networks/import", "text/plain", file, 415)

	// Five networks now: the most this server keeps (see newContract).
	d := c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,1000,10],"seed":3}`), 200).field(t, "network_id")
	c.check("POST", "/api/networks", "", nil, 409)

	// Cancel: a running job (once it has sent a training_progress) and a
	// pending one; one worker and a queue of one, so a third job is 503.
	jobD := train(d, `{"epochs":3,"seed":3}`)
	c.waitJob(jobD, func(s string) bool { return s == "training" })
	c.check("POST", "/api/networks/"+d+"/restore", jsonCT, []byte(`{"best":true}`), 409)
	jobB := train(b, `{"epochs":1}`)
	c.check("POST", "/api/networks/"+b+"/train", jsonCT, []byte(`{"epochs":1}`), 503)
	c.check("POST", "/api/training/"+jobB+"/cancel", "", nil, 200)
	c.events.wait(t, live.EventProgress, jobD)
	c.check("POST", "/api/training/"+jobD+"/cancel", "", nil, 200)
	for _, job := range []string{jobB, jobD} {
		if ev := c.events.wait(t, live.EventError, job); ev["status"] != "cancelled" {
			t.Errorf("training_error of cancelled job %s: %v", job, ev)
		}
		c.waitJob(job, func(s string) bool { return s == "cancelled" })
	}
	c.events.wait(t, live.EventUpdate, jobA)
	c.events.wait(t, live.EventComplete, jobA)

	// The job list: every status seen by now, pages, filters, bad
	// parameters.
	c.check("GET", "/api/training", "", nil, 200)
	c.check("HEAD", "/api/training", "", nil, 200)
	next := c.check("GET", "/api/training?limit=1", "", nil, 200).field(t, "next_cursor")
	c.check("GET", "/api/training?limit=1&cursor="+next, "", nil, 200)
	c.check("GET", "/api/training?network_id="+a+"&status=completed,cancelled&limit=100", "", nil, 200)
	c.check("GET", "/api/training?status=pending&status=training", "", nil, 200)
	c.check("GET", "/api/training?limit=0", "", nil, 400)
	c.check("GET", "/api/training?status=done", "", nil, 400)
	c.check("GET", "/api/training?network_id=NOT-A-UUID", "", nil, 400)
	c.check("GET", "/api/training?cursor=xyz", "", nil, 400)

	// Methods and paths that are not there.
	c.check("PUT", "/api/status", jsonCT, []byte(`{}`), 405)
	c.check("DELETE", "/api/training/"+jobA, "", nil, 405)
	c.check("GET", "/api/nope", "", nil, 404)

	// Metrics, once there is something to count.
	if r := c.check("GET", "/metrics", "", nil, 200); !bytes.Contains(r.body, []byte("nnserver_jobs_finished_total")) {
		t.Errorf("GET /metrics has no nnserver_jobs_finished_total:\n%.2000s", r.body)
	}
	c.check("HEAD", "/metrics", "", nil, 200)

	// Delete one, then all.
	c.check("DELETE", "/api/networks/"+imported, "", nil, 200)
	c.check("DELETE", "/api/networks/"+imported, "", nil, 404)
	c.check("DELETE", "/api/networks", "", nil, 200)

	// The models directory gone: 507. Shutting down: 503.
	if err := os.RemoveAll(c.modelsDir); err != nil {
		t.Fatal(err)
	}
	c.check("POST", "/api/networks", "", nil, 507)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.check("POST", "/api/networks", "", nil, 503); r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	c.report()
}

// TestOpenAPIAuthResponses: with both switches on (ADMIN_TOKEN,
// OWNERSHIP=on), METRICS_TOKEN and a rate limit, the answers 401 (with
// WWW-Authenticate), 403 and 429 (with Retry-After) are the documented
// ones, and so are those of the requests that the right token lets
// through.
func TestOpenAPIAuthResponses(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a network")
	}
	const admin, metricsToken = "admin-token-for-the-contract", "metrics-token-for-the-contract"
	p, err := service.NewPolicy(service.PolicyConfig{AdminToken: admin, MetricsToken: metricsToken, Ownership: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newContractWith(t, p, RateLimits{Create: 3, Train: 100, Import: 100})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	owner := func(tok string) http.Header { return http.Header{"X-Owner-Token": {tok}} }
	const jsonCT = "application/json"

	if r := c.check("GET", "/api/status", "", nil, 200); !bytes.Contains(r.body, []byte(`"ownership":true`)) {
		t.Errorf("status does not say ownership is on: %s", r.body)
	}
	var mine, theirs struct {
		NetworkID  string `json:"network_id"`
		OwnerToken string `json:"owner_token"`
	}
	for _, n := range []any{&mine, &theirs} {
		r := c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,10]}`), 200)
		if err := json.Unmarshal(r.body, n); err != nil {
			t.Fatal(err)
		}
	}
	id := mine.NetworkID
	me, someone := c.as(owner(mine.OwnerToken)), c.as(owner(theirs.OwnerToken))

	for _, who := range []*contract{c, someone, me, c.as(bearer(admin))} {
		who.check("GET", "/api/networks/"+id+"/access", "", nil, 200)
	}
	if r := c.check("DELETE", "/api/networks/"+id, "", nil, 401); r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	someone.check("DELETE", "/api/networks/"+id, "", nil, 403)
	c.check("PATCH", "/api/networks/"+id, jsonCT, []byte(`{"name":"mine"}`), 401)
	someone.check("PATCH", "/api/networks/"+id, jsonCT, []byte(`{"name":"theirs"}`), 403)
	me.check("PATCH", "/api/networks/"+id, jsonCT, []byte(`{"name":"mine"}`), 200)
	c.check("POST", "/api/networks/"+id+"/restore", jsonCT, []byte(`{"best":true}`), 401)
	someone.check("POST", "/api/networks/"+id+"/restore", jsonCT, []byte(`{"best":true}`), 403)
	c.check("POST", "/api/networks/"+id+"/train", jsonCT, []byte(`{"epochs":1}`), 401)
	someone.check("POST", "/api/networks/"+id+"/train", jsonCT, []byte(`{"epochs":1}`), 403)
	job := me.check("POST", "/api/networks/"+id+"/train", jsonCT, []byte(`{"epochs":1000}`), 200).field(t, "job_id")
	c.check("POST", "/api/training/"+job+"/cancel", "", nil, 401)
	someone.check("POST", "/api/training/"+job+"/cancel", "", nil, 403)
	c.as(bearer(mine.OwnerToken)).check("POST", "/api/training/"+job+"/cancel", "", nil, 200)

	c.check("GET", "/metrics", "", nil, 401)
	c.as(bearer(admin+"-not")).check("GET", "/metrics", "", nil, 403)
	c.as(bearer(metricsToken)).check("GET", "/metrics", "", nil, 200)
	c.as(bearer(admin)).check("GET", "/metrics", "", nil, 200)

	// The third create of this address within the minute.
	if r := c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,10]}`), 200); r.field(t, "owner_token") == "" {
		t.Error("no owner token")
	}
	if r := c.check("POST", "/api/networks", jsonCT, []byte(`{"layer_sizes":[784,10]}`), 429); r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	c.check("DELETE", "/api/networks", "", nil, 401)
	me.check("DELETE", "/api/networks", "", nil, 401)
	c.as(bearer(mine.OwnerToken)).check("DELETE", "/api/networks", "", nil, 403)
	me.check("DELETE", "/api/networks/"+id, "", nil, 200)
	c.as(bearer(admin)).check("DELETE", "/api/networks/"+theirs.NetworkID, "", nil, 200)
	c.as(bearer(admin)).check("DELETE", "/api/networks", "", nil, 200)
}

// contract is a real server (HTTP on loopback, a service with the embedded
// MNIST, Socket.IO, metrics) and the document it is checked against.
type contract struct {
	t         *testing.T
	url       string
	client    *http.Client
	svc       *service.Service
	modelsDir string
	doc       *openapi3.T
	router    routers.Router
	events    *eventLog

	seen map[string]map[int]bool // operation ("GET /api/status") → statuses answered
	// headers are sent with every request (credentials).
	headers http.Header
}

func newContract(t *testing.T) *contract { return newContractWith(t, nil, RateLimits{}) }

// newContractWith is newContract with an access policy (nil: open) and
// rate limits.
func newContractWith(t *testing.T, policy *service.Policy, rl RateLimits) *contract {
	t.Helper()
	for _, ct := range []string{"image/png", "image/jpeg", "image/gif"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
		t.Cleanup(func() { openapi3filter.UnregisterBodyDecoder(ct) })
	}
	doc := loadOpenAPI(t, true)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/models"
	st, err := dirstore.Open(dir, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	lim := service.DefaultLimits()
	lim.MaxNetworks = 5
	lim.MaxQueuedJobs = 1
	io := live.New(live.Options{Logger: discardLog()})
	var svc *service.Service
	m := metrics.New(metrics.Sources{
		Service:       func() service.Gauges { return svc.Gauges(context.Background()) },
		SocketClients: io.Clients, EventsEmitted: io.Emitted,
	})
	svc, err = service.New(context.Background(), service.Config{
		Data: sync.OnceValues(mnist.LoadEmbedded), Store: st, Events: io, Workers: 1, Limits: lim,
		Logger: discardLog(), Observer: m, Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Service: svc, SocketIO: io.Handler(), Logger: discardLog(), Metrics: m.Handler(), Requests: m, RateLimits: rl})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	c := &contract{t: t, url: srv.URL, client: srv.Client(), svc: svc, modelsDir: dir, doc: doc, router: router,
		seen: map[string]map[int]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	c.events = listen(t, ctx, srv.URL, doc)
	t.Cleanup(func() {
		stop()
		c.events.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Close(ctx)
		io.Close()
		srv.Close()
	})
	return c
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) field(t *testing.T, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not a JSON object: %s", a.body)
	}
	s, _ := m[name].(string)
	if s == "" {
		t.Fatalf("no %s in %s", name, a.body)
	}
	return s
}

// check sends a request, requires the status, and validates the answer
// against the operation the document has for it (and the request too when
// it succeeded). A request the document has no operation for must be
// answered with an Error body. A HEAD must answer as GET does, without a
// body.
func (c *contract) check(method, path, contentType string, body []byte, want int) answer {
	t := c.t
	t.Helper()
	req := c.request(method, path, contentType, body)
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	a := answer{res.StatusCode, res.Header, data}
	if a.status != want {
		t.Fatalf("%s %s: %d %.300s, want %d", method, path, a.status, data, want)
	}

	route, params, err := c.router.FindRoute(c.request(method, path, contentType, body))
	if err != nil {
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if a.status < 400 {
			t.Errorf("%s %s: answered %d, but the document has no such operation", method, path, a.status)
		}
		c.validateJSON(method+" "+path, "Error", data)
		return a
	}
	op := route.Method + " " + route.Path
	if c.seen[op] == nil {
		c.seen[op] = map[int]bool{}
	}
	c.seen[op][a.status] = true

	if method == http.MethodHead {
		if len(data) != 0 {
			t.Errorf("%s %s: a body of %d bytes", method, path, len(data))
		}
		if route.Operation.Responses.Status(a.status) == nil {
			t.Errorf("%s %s: status %d is not documented", method, path, a.status)
		}
		get := c.check(http.MethodGet, path, contentType, nil, want)
		if a.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Errorf("HEAD %s: Content-Type %q, GET's is %q", path, a.header.Get("Content-Type"), get.header.Get("Content-Type"))
		}
		return a
	}

	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: c.request(method, path, contentType, body), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if a.status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s %s: the request succeeded, but the document refuses it: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: a.status, Header: a.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(data)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: the answer %d does not match the document: %v\n%.500s", method, path, a.status, err, data)
	}
	return a
}

func (c *contract) request(method, path, contentType string, body []byte) *http.Request {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	return req
}

// as returns a copy of c that sends these headers (nil: none).
func (c *contract) as(h http.Header) *contract {
	cc := *c
	cc.headers = h
	return &cc
}

// validateJSON validates data against a component schema.
func (c *contract) validateJSON(where, schema string, data []byte) {
	c.t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		c.t.Errorf("%s: not JSON: %.300s", where, data)
		return
	}
	if err := c.doc.Components.Schemas[schema].Value.VisitJSON(v); err != nil {
		c.t.Errorf("%s: not a %s: %v\n%.300s", where, schema, err, data)
	}
}

// waitJob polls a job, each answer validated, until done says its status
// is the one awaited.
func (c *contract) waitJob(job string, done func(status string) bool) {
	c.t.Helper()
	var status string
	if !testutil.Poll(2*time.Minute, 20*time.Millisecond, func() bool {
		var info struct{ Status string }
		json.Unmarshal(c.check("GET", "/api/training/"+job, "", nil, 200).body, &info)
		status = info.Status
		return done(status)
	}) {
		c.t.Fatalf("job %s still %s", job, status)
	}
}

// report fails for every documented operation never exercised, and logs
// the documented statuses that were not.
func (c *contract) report() {
	t := c.t
	var untested []string
	for p, item := range c.doc.Paths.Map() {
		for m, op := range item.Operations() {
			name := m + " " + p
			got := c.seen[name]
			if got == nil {
				t.Errorf("documented operation %s was never exercised", name)
				continue
			}
			for code := range op.Responses.Map() {
				if n, err := strconv.Atoi(code); err == nil && !got[n] {
					untested = append(untested, name+" "+code)
				}
			}
		}
	}
	sort.Strings(untested)
	t.Logf("documented answers not provoked here (%d): %s", len(untested), strings.Join(untested, ", "))
	for _, ev := range []string{live.EventUpdate, live.EventProgress, live.EventComplete, live.EventError} {
		if c.events.count(ev) == 0 {
			t.Errorf("no %s event was seen", ev)
		}
	}
}

// eventLog is a Socket.IO client of namespace "/" over Engine.IO 4
// long-polling, written against the protocol: it validates every event
// against its schema and keeps them for wait.
type eventLog struct {
	t    *testing.T
	done sync.WaitGroup

	mu     sync.Mutex
	cond   *sync.Cond
	events []eventRecord
	err    error
}

type eventRecord struct {
	name    string
	payload map[string]any
}

var eventSchemas = map[string]string{
	live.EventUpdate:   "TrainingUpdateEvent",
	live.EventProgress: "TrainingProgressEvent",
	live.EventComplete: "TrainingCompleteEvent",
	live.EventError:    "TrainingErrorEvent",
}

func listen(t *testing.T, ctx context.Context, base string, doc *openapi3.T) *eventLog {
	t.Helper()
	l := &eventLog{t: t}
	l.cond = sync.NewCond(&l.mu)
	poll := base + "/socket.io/?EIO=4&transport=polling"
	send := func(ctx context.Context, url, body string) (string, error) {
		method := http.MethodGet
		var r io.Reader
		if body != "" {
			method, r = http.MethodPost, strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, r)
		if err != nil {
			return "", err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %d %s", method, res.StatusCode, data)
		}
		return string(data), err
	}
	open, err := send(ctx, poll, "")
	if err != nil || !strings.HasPrefix(open, "0{") {
		t.Fatalf("Engine.IO handshake: %q %v", open, err)
	}
	var hs struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
	}
	if err := json.Unmarshal([]byte(open[1:]), &hs); err != nil || hs.SID == "" || hs.PingInterval != 25000 || hs.PingTimeout != 60000 ||
		!slices.Equal(hs.Upgrades, []string{"websocket"}) {
		t.Fatalf("Engine.IO handshake %s: want a sid, upgrades [websocket], pingInterval 25000, pingTimeout 60000", open)
	}
	session := poll + "&sid=" + hs.SID
	if _, err := send(ctx, session, "40"); err != nil {
		t.Fatalf("Socket.IO connect: %v", err)
	}
	l.done.Go(func() {
		for ctx.Err() == nil {
			payload, err := send(ctx, session, "")
			if err != nil {
				if ctx.Err() == nil {
					l.fail(fmt.Errorf("long-poll: %w", err))
				}
				return
			}
			for _, p := range strings.Split(payload, "\x1e") {
				switch {
				case p == "2": // ping
					send(ctx, session, "3")
				case p == "1": // close
					return
				case strings.HasPrefix(p, "42"):
					var msg []json.RawMessage
					var name string
					var v any
					if json.Unmarshal([]byte(p[2:]), &msg) != nil || len(msg) != 2 || json.Unmarshal(msg[0], &name) != nil ||
						json.Unmarshal(msg[1], &v) != nil {
						l.fail(fmt.Errorf("event packet %q is not [name, payload]", p))
						continue
					}
					schema, known := eventSchemas[name]
					if !known {
						l.fail(fmt.Errorf("event %q is not documented", name))
						continue
					}
					if err := doc.Components.Schemas[schema].Value.VisitJSON(v); err != nil {
						l.fail(fmt.Errorf("event %s does not match %s: %v\n%s", name, schema, err, msg[1]))
					}
					obj, _ := v.(map[string]any)
					l.mu.Lock()
					l.events = append(l.events, eventRecord{name, obj})
					l.cond.Broadcast()
					l.mu.Unlock()
				}
			}
		}
	})
	return l
}

func (l *eventLog) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	l.cond.Broadcast()
}

// wait returns the first event of this name for the job, failing the test
// if an event was invalid or none comes within a minute.
func (l *eventLog) wait(t *testing.T, name, job string) map[string]any {
	t.Helper()
	timer := time.AfterFunc(time.Minute, func() { l.fail(fmt.Errorf("no %s for job %s within a minute", name, job)) })
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for _, e := range l.events {
			if e.name == name && e.payload["job_id"] == job {
				return e.payload
			}
		}
		if l.err != nil {
			t.Fatal(l.err)
		}
		l.cond.Wait()
	}
}

func (l *eventLog) count(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		l.t.Error(l.err)
	}
	n := 0
	for _, e := range l.events {
		if e.name == name {
			n++
		}
	}
	return n
}

// docService is a service that needs no data: for the tests that only
// route.
func docService(t *testing.T) *service.Service {
	t.Helper()
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(context.Background(), service.Config{
		Data:  func() (*mnist.Dataset, error) { return nil, errors.New("no data in this test") },
		Store: st, Workers: 1, Logger: discardLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	return svc
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func scalePixels(px []uint8) []float64 {
	x := make([]float64, len(px))
	for i, v := range px {
		x[i] = float64(v) / 255
	}
	return x
}

// drawDigit draws a 28×28 MNIST image as a person would give it: 280×280,
// black ink on white.
func drawDigit(t *testing.T, px []uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 280, 280))
	for y := range 280 {
		for x := range 280 {
			img.SetGray(x, y, color.Gray{Y: 255 - px[(y/10)*28+x/10]})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
