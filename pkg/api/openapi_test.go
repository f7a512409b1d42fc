package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/store"
)

// openAPIDoc is the embedded document, decoded generically.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not a JSON object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatal("openapi.json has data after the JSON object")
	}
	return doc
}

// routerForDoc builds the real router on a service that needs no data.
func routerForDoc(t *testing.T) *gin.Engine {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := service.New(context.Background(), service.Config{
		Data:    func() (*mnist.Dataset, error) { return nil, errors.New("no data in this test") },
		Store:   st,
		Workers: 1,
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	r, err := newEngine(Options{Service: svc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	oaGinParam = regexp.MustCompile(`[:*][^/]+`)
	oaDocParam = regexp.MustCompile(`\{[^/}]+\}`)
)

// TestOpenAPIMatchesRouter checks that the document describes exactly the
// routes the router has under /api/: no route undocumented, no documented
// operation missing.
func TestOpenAPIMatchesRouter(t *testing.T) {
	engine := routerForDoc(t)
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		routes[r.Method+" "+oaGinParam.ReplaceAllString(r.Path, "{}")] = true
	}
	if len(routes) == 0 {
		t.Fatal("the router has no /api/ routes")
	}

	doc := openAPIDoc(t)
	paths, _ := doc["paths"].(map[string]any)
	documented := map[string]bool{}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for _, m := range methods {
			if _, ok := ops[m]; ok {
				documented[strings.ToUpper(m)+" "+oaDocParam.ReplaceAllString(p, "{}")] = true
			}
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("openapi.json documents %s, which the router does not have", d)
		}
	}
}

// TestOpenAPIDocument checks the document's structure: OpenAPI 3.x, every
// path parameter declared, every operation with a 200 answer and unique
// operationId, every $ref resolving, every error answer using the Error
// schema, and examples carrying the properties their schemas require.
func TestOpenAPIDocument(t *testing.T) {
	doc := openAPIDoc(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi = %q, want 3.x", v)
	}
	if info, _ := doc["info"].(map[string]any); info["title"] == nil || info["version"] == nil {
		t.Error("info needs title and version")
	}

	// Every $ref points at something.
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				refs = append(refs, r)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	for _, r := range refs {
		if oaResolve(doc, r) == nil {
			t.Errorf("$ref %q does not resolve", r)
		}
	}

	opIDs := map[string]bool{}
	paths, _ := doc["paths"].(map[string]any)
	for p, raw := range paths {
		item := raw.(map[string]any)
		// Path parameters: each {name} in the path declared, in: path, required.
		declared := map[string]bool{}
		for _, prm := range oaParams(doc, item["parameters"]) {
			if prm["in"] == "path" {
				declared[prm["name"].(string)] = prm["required"] == true
			}
		}
		for m, rawOp := range item {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			op := rawOp.(map[string]any)
			where := strings.ToUpper(m) + " " + p
			for _, prm := range oaParams(doc, op["parameters"]) {
				if prm["in"] == "path" {
					declared[prm["name"].(string)] = prm["required"] == true
				}
			}
			for _, name := range oaDocParam.FindAllString(p, -1) {
				name = strings.Trim(name, "{}")
				if req, ok := declared[name]; !ok || !req {
					t.Errorf("%s: path parameter %s is not declared as a required path parameter", where, name)
				}
			}
			id, _ := op["operationId"].(string)
			if id == "" || opIDs[id] {
				t.Errorf("%s: operationId %q missing or not unique", where, id)
			}
			opIDs[id] = true
			responses, _ := op["responses"].(map[string]any)
			if _, ok := responses["200"]; !ok {
				t.Errorf("%s: no 200 response", where)
			}
			for code, rawResp := range responses {
				resp := rawResp.(map[string]any)
				if resp["description"] == nil {
					t.Errorf("%s %s: no description", where, code)
				}
				content, _ := resp["content"].(map[string]any)
				media, _ := content["application/json"].(map[string]any)
				if media == nil {
					t.Errorf("%s %s: no application/json content", where, code)
					continue
				}
				schema, _ := media["schema"].(map[string]any)
				if code >= "400" && schema["$ref"] != "#/components/schemas/Error" {
					t.Errorf("%s %s: an error answer must use the Error schema", where, code)
				}
				oaCheckExamples(t, doc, where+" "+code, schema, media)
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				content, _ := rb["content"].(map[string]any)
				media, _ := content["application/json"].(map[string]any)
				if media == nil {
					t.Errorf("%s: request body without application/json", where)
					continue
				}
				schema, _ := media["schema"].(map[string]any)
				oaCheckExamples(t, doc, where+" request", schema, media)
			}
		}
	}
}

// oaParams resolves a parameters list.
func oaParams(doc map[string]any, v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		m, _ := e.(map[string]any)
		if r, ok := m["$ref"].(string); ok {
			m, _ = oaResolve(doc, r).(map[string]any)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// oaResolve follows a local JSON pointer ("#/components/schemas/X").
func oaResolve(doc map[string]any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// oaCheckExamples requires the examples of a media type to have every
// property the (object) schema requires, and no property it does not know.
func oaCheckExamples(t *testing.T, doc map[string]any, where string, schema, media map[string]any) {
	t.Helper()
	if r, ok := schema["$ref"].(string); ok {
		schema, _ = oaResolve(doc, r).(map[string]any)
	}
	props, _ := schema["properties"].(map[string]any)
	if props == nil {
		return
	}
	var examples []any
	if e, ok := media["example"]; ok {
		examples = append(examples, e)
	}
	exs, _ := media["examples"].(map[string]any)
	for _, e := range exs {
		examples = append(examples, e.(map[string]any)["value"])
	}
	if len(examples) == 0 {
		t.Errorf("%s: no example", where)
	}
	for _, e := range examples {
		obj, ok := e.(map[string]any)
		if !ok {
			t.Errorf("%s: example %v is not an object", where, e)
			continue
		}
		for k := range obj {
			if _, ok := props[k]; !ok {
				t.Errorf("%s: example has %q, which the schema does not", where, k)
			}
		}
		req, _ := schema["required"].([]any)
		for _, k := range req {
			if _, ok := obj[k.(string)]; !ok {
				t.Errorf("%s: example lacks required %q", where, k)
			}
		}
	}
}

// TestOpenAPISchemasMatchGoTypes checks each schema against the Go type
// that is encoded into it: the same JSON names, required exactly when not
// omitempty, nullable exactly for pointers that are always sent, and
// matching JSON types down to array items.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := openAPIDoc(t)
	schemas := oaResolve(doc, "#/components/schemas").(map[string]any)
	for name, typ := range map[string]reflect.Type{
		"Error":        reflect.TypeFor[errorBody](),
		"Status":       reflect.TypeFor[statusBody](),
		"Created":      reflect.TypeFor[createdBody](),
		"NetworkInfo":  reflect.TypeFor[networkBody](),
		"Deleted":      reflect.TypeFor[deletedBody](),
		"DeletedAll":   reflect.TypeFor[deletedAllBody](),
		"TrainStarted": reflect.TypeFor[trainStartedBody](),
		"JobInfo":      reflect.TypeFor[jobBody](),
	} {
		schema, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("components/schemas has no %s", name)
			continue
		}
		oaCheckStruct(t, name, schema, typ)
	}

	// Request bodies: the field names the decoder reads.
	for name, fields := range map[string][]string{
		"CreateNetworkRequest": {service.FieldLayerSizes},
		"TrainRequest":         {service.FieldEpochs, service.FieldMiniBatch, service.FieldLearningRate},
	} {
		props, _ := schemas[name].(map[string]any)["properties"].(map[string]any)
		var got []string
		for k := range props {
			got = append(got, k)
		}
		sort.Strings(got)
		sort.Strings(fields)
		if !slices.Equal(got, fields) {
			t.Errorf("%s: properties %v, want %v", name, got, fields)
		}
	}

	// Defaults and limits stated in the request schemas.
	def := service.DefaultTrainParams()
	lim := service.DefaultLimits()
	train := schemas["TrainRequest"].(map[string]any)["properties"].(map[string]any)
	for field, want := range map[string][2]float64{
		service.FieldEpochs:       {float64(def.Epochs), float64(lim.MaxEpochs)},
		service.FieldMiniBatch:    {float64(def.MiniBatch), float64(lim.MaxBatchSize)},
		service.FieldLearningRate: {def.LearningRate, lim.MaxLearningRate},
	} {
		p := train[field].(map[string]any)
		if p["default"] != want[0] || p["maximum"] != want[1] {
			t.Errorf("TrainRequest.%s: default %v maximum %v, want %v and %v", field, p["default"], p["maximum"], want[0], want[1])
		}
	}
	layers := schemas["CreateNetworkRequest"].(map[string]any)["properties"].(map[string]any)[service.FieldLayerSizes].(map[string]any)
	var defArch []int
	for _, v := range layers["default"].([]any) {
		defArch = append(defArch, int(v.(float64)))
	}
	if !slices.Equal(defArch, service.DefaultArchitecture()) || layers["maxItems"] != float64(lim.MaxLayers) {
		t.Errorf("CreateNetworkRequest.layer_sizes: default %v maxItems %v, want %v and %d",
			defArch, layers["maxItems"], service.DefaultArchitecture(), lim.MaxLayers)
	}
}

func oaCheckStruct(t *testing.T, where string, schema map[string]any, typ reflect.Type) {
	t.Helper()
	if schema["type"] != "object" {
		t.Errorf("%s: type %v, want object", where, schema["type"])
		return
	}
	props, _ := schema["properties"].(map[string]any)
	required := map[string]bool{}
	for _, r := range schema["required"].([]any) {
		required[r.(string)] = true
	}
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		seen[name] = true
		omitempty := strings.Contains(","+opts+",", ",omitempty,")
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: property %q (field %s) is missing", where, name, f.Name)
			continue
		}
		if required[name] == omitempty {
			t.Errorf("%s.%s: required=%v, but the field is omitempty=%v", where, name, required[name], omitempty)
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if (p["nullable"] == true) != !omitempty {
				t.Errorf("%s.%s: a pointer sent as null must be nullable (and only then); nullable=%v", where, name, p["nullable"])
			}
		} else if p["nullable"] == true {
			t.Errorf("%s.%s: nullable, but never null", where, name)
		}
		oaCheckType(t, where+"."+name, p, ft)
	}
	for name := range props {
		if !seen[name] {
			t.Errorf("%s: property %q has no field in %s", where, name, typ)
		}
	}
	for name := range required {
		if !seen[name] {
			t.Errorf("%s: required %q has no field in %s", where, name, typ)
		}
	}
}

func oaCheckType(t *testing.T, where string, p map[string]any, typ reflect.Type) {
	t.Helper()
	want := ""
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64:
		want = "integer"
	case reflect.Struct:
		oaCheckStruct(t, where, p, typ)
		return
	case reflect.Float64, reflect.Float32:
		want = "number"
	case reflect.Slice, reflect.Array:
		want = "array"
	default:
		t.Errorf("%s: Go type %s not handled by this test", where, typ)
		return
	}
	if p["type"] != want {
		t.Errorf("%s: type %v, want %s (Go %s)", where, p["type"], want, typ)
		return
	}
	if want == "array" {
		items, ok := p["items"].(map[string]any)
		if !ok {
			t.Errorf("%s: array without items", where)
			return
		}
		if typ.Kind() == reflect.Array {
			if p["minItems"] != float64(typ.Len()) || p["maxItems"] != float64(typ.Len()) {
				t.Errorf("%s: Go %s needs minItems = maxItems = %d", where, typ, typ.Len())
			}
		}
		oaCheckType(t, where+"[]", items, typ.Elem())
	}
}

// TestOpenAPIServed checks that GET /api/openapi.json answers the embedded
// document byte for byte, as JSON.
func TestOpenAPIServed(t *testing.T) {
	engine := routerForDoc(t)
	req := httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil)
	w := httptest.NewRecorder()
	engine.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: %d %s", w.Code, w.Body)
	}
	mt, _, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Errorf("Content-Type %q, want application/json", w.Header().Get("Content-Type"))
	}
	if !bytes.Equal(w.Body.Bytes(), openAPI) {
		t.Errorf("served %d bytes, not the embedded document (%d bytes)", w.Body.Len(), len(openAPI))
	}
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		return // only when the request has an Origin
	}
	req = httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil)
	req.Header.Set("Origin", "https://editor.swagger.io")
	w = httptest.NewRecorder()
	engine.ServeHTTP(w, req)
	if w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("cross-origin GET: Access-Control-Allow-Origin %q, want * (Swagger UI on another origin reads it)", w.Header().Get("Access-Control-Allow-Origin"))
	}
}
