package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"
)

// digitPNG renders MNIST test image i as a person would give it: 280×280,
// black ink on white.
func digitPNG(t *testing.T, i int) []byte {
	t.Helper()
	ds, err := loadMNIST()
	if err != nil {
		t.Fatal(err)
	}
	px := ds.Test.Image(i, nil)
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

func pixelsJSON(t *testing.T, px []uint8) string {
	t.Helper()
	vals := make([]float64, len(px))
	for i, v := range px {
		vals[i] = float64(v) / 255
	}
	b, _ := json.Marshal(map[string]any{"pixels": vals})
	return string(b)
}

// TestPredict: pixels, base64 images, data: URLs and raw PNGs all give
// the contract's answer; every bad input is a 4xx naming the problem.
func TestPredict(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	job := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":2,"seed":3}`).json(t)["job_id"].(string)
	s.waitJob(t, job)
	ds, _ := loadMNIST()

	check := func(name string, r response, wantDigit int) {
		t.Helper()
		var p struct {
			NetworkID      string    `json:"network_id"`
			PredictedDigit int       `json:"predicted_digit"`
			Confidence     float64   `json:"confidence"`
			NetworkOutput  []float64 `json:"network_output"`
			ImageData      string    `json:"image_data"`
		}
		dec := json.NewDecoder(strings.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil || r.status != 200 {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		img, err := func() (image.Image, error) {
			b, err := base64.StdEncoding.DecodeString(p.ImageData)
			if err != nil {
				return nil, err
			}
			return png.Decode(bytes.NewReader(b))
		}()
		sorted := slices.Clone(p.NetworkOutput)
		slices.Sort(sorted)
		if err != nil || img.Bounds().Dx() != 28 || img.Bounds().Dy() != 28 {
			t.Errorf("%s: image_data is not a 28×28 PNG: %v", name, err)
		}
		if p.NetworkID != id || len(p.NetworkOutput) != 10 || len(sorted) < 2 || p.NetworkOutput[p.PredictedDigit]-sorted[len(sorted)-2] != p.Confidence {
			t.Errorf("%s: %+v", name, p)
		}
		if wantDigit >= 0 && p.PredictedDigit != wantDigit {
			t.Errorf("%s: predicted %d, want %d", name, p.PredictedDigit, wantDigit)
		}
	}
	// Test image 0 is a 7 that this network gets right.
	check("pixels", s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, pixelsJSON(t, ds.Test.Image(0, nil))), 7)
	pngBytes := digitPNG(t, 0)
	b64 := base64.StdEncoding.EncodeToString(pngBytes)
	check("base64", s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, `{"image":"`+b64+`"}`), 7)
	check("data URL", s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, `{"image":"data:image/png;base64,`+b64+`"}`), 7)
	check("raw PNG", s.doBytes(t, "POST", "/api/networks/"+id+"/predict", "image/png", pngBytes), 7)

	white := image.NewGray(image.Rect(0, 0, 50, 50))
	for i := range white.Pix {
		white.Pix[i] = 255
	}
	var blank, one bytes.Buffer
	png.Encode(&blank, white)
	png.Encode(&one, image.NewGray(image.Rect(0, 0, 1, 1)))
	// A PNG header claiming 20000×20000 pixels, and nothing after it.
	huge := append([]byte(nil), pngBytes[:33]...)
	copy(huge[16:24], []byte{0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20})
	binary.BigEndian.PutUint32(huge[29:33], crc32.ChecksumIEEE(huge[12:29]))
	for _, tc := range []struct {
		name, ct string
		body     []byte
		status   int
		want     string
	}{
		{"783 pixels", jsonCT, []byte(pixelsJSON(t, make([]uint8, 783))), 400, "784"},
		{"pixel out of range", jsonCT, []byte(`{"pixels":[` + strings.Repeat("0,", 783) + `2]}`), 400, "pixels[783]"},
		{"pixel not a number", jsonCT, []byte(`{"pixels":[` + strings.Repeat("0,", 783) + `"x"]}`), 400, "pixels[783]"},
		{"pixels not a list", jsonCT, []byte(`{"pixels":"0,0"}`), 400, "pixels must be a list"},
		{"neither", jsonCT, []byte(`{}`), 400, `needs \"pixels\"`},
		{"blank image", "image/png", blank.Bytes(), 400, "blank"},
		{"1×1 image", "image/png", one.Bytes(), 400, "blank"},
		{"truncated PNG", "image/png", pngBytes[:len(pngBytes)/2], 400, "PNG"},
		{"20000×20000 header", "image/png", huge, 400, "20000"},
		{"not an image", "image/png", []byte("hello"), 400, "not a PNG"},
		{"bad base64", jsonCT, []byte(`{"image":"%%%"}`), 400, "base64"},
		{"image not a string", jsonCT, []byte(`{"image":5}`), 400, "image must be"},
		{"too large", "image/png", make([]byte, 1<<20+1), 413, "larger than"},
		{"text", "text/plain", []byte("7"), 415, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.doBytes(t, "POST", "/api/networks/"+id+"/predict", tc.ct, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("%d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
		})
	}
	if r := s.do(t, "POST", "/api/networks/9b2c6f1e-4a7d-4c3e-8f5a-1d2e3f4a5b6c/predict", jsonCT, pixelsJSON(t, ds.Test.Image(0, nil))); r.status != 404 {
		t.Errorf("unknown network: %d %s", r.status, r.body)
	}
}

// TestPredictDigitsAsPeopleGiveThem sends 20 real test digits as 280×280
// black-on-white PNGs through /predict: the network gets about as many
// right as it does from the raw pixels.
func TestPredictDigitsAsPeopleGiveThem(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	job := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":2,"seed":3}`).json(t)["job_id"].(string)
	s.waitJob(t, job)
	ds, _ := loadMNIST()
	fromImage, fromPixels := 0, 0
	const n = 20
	for i := range n {
		var p struct {
			PredictedDigit int `json:"predicted_digit"`
		}
		json.Unmarshal([]byte(s.doBytes(t, "POST", "/api/networks/"+id+"/predict", "image/png", digitPNG(t, i)).body), &p)
		if p.PredictedDigit == ds.Test.Label(i) {
			fromImage++
		}
		json.Unmarshal([]byte(s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, pixelsJSON(t, ds.Test.Image(i, nil))).body), &p)
		if p.PredictedDigit == ds.Test.Label(i) {
			fromPixels++
		}
	}
	t.Logf("of %d test digits: %d right as 280×280 PNGs, %d as pixels", n, fromImage, fromPixels)
	if fromImage < fromPixels-2 {
		t.Errorf("%d right from images, %d from pixels", fromImage, fromPixels)
	}
}

func TestEvaluationEndpoints(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	job := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":1,"seed":3}`).json(t)["job_id"].(string)
	info := s.waitJob(t, job)
	r := s.do(t, "GET", "/api/networks/"+id+"/evaluation", "", "")
	var ev struct {
		NetworkID       string  `json:"network_id"`
		Accuracy        float64 `json:"accuracy"`
		Correct         int     `json:"correct"`
		Total           int     `json:"total"`
		ConfusionMatrix [][]int `json:"confusion_matrix"`
		PerClass        []struct {
			Digit     int      `json:"digit"`
			Count     int      `json:"count"`
			Precision *float64 `json:"precision"`
			Recall    *float64 `json:"recall"`
		} `json:"per_class"`
		Mistakes []struct {
			ExampleIndex   int     `json:"example_index"`
			ActualDigit    int     `json:"actual_digit"`
			PredictedDigit int     `json:"predicted_digit"`
			Confidence     float64 `json:"confidence"`
			ImageData      string  `json:"image_data"`
		} `json:"most_confident_mistakes"`
	}
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || r.status != 200 {
		t.Fatalf("evaluation: %d %s (%v)", r.status, r.body[:min(200, len(r.body))], err)
	}
	sum, diag := 0, 0
	for i, row := range ev.ConfusionMatrix {
		for _, v := range row {
			sum += v
		}
		diag += row[i]
	}
	if len(ev.ConfusionMatrix) != 10 || sum != 10000 || diag != ev.Correct || ev.Total != 10000 ||
		ev.Accuracy != info["accuracy"] || len(ev.PerClass) != 10 || len(ev.Mistakes) != 12 {
		t.Errorf("evaluation: sum %d diag %d %+v", sum, diag, ev.PerClass)
	}
	for _, m := range ev.Mistakes {
		if m.ActualDigit == m.PredictedDigit || m.ImageData == "" {
			t.Errorf("mistake %+v", m)
		}
	}
	if again := s.do(t, "GET", "/api/networks/"+id+"/evaluation", "", ""); again.body != r.body {
		t.Error("two evaluations of one version differ")
	}
	m := ev.Mistakes[0]
	r = s.do(t, "GET", fmt.Sprintf("/api/networks/%s/evaluation/examples?actual=%d&predicted=%d", id, m.ActualDigit, m.PredictedDigit), "", "")
	cell := r.json(t)
	if r.status != 200 || cell["count"] != float64(ev.ConfusionMatrix[m.ActualDigit][m.PredictedDigit]) ||
		cell["examples"].([]any)[0].(map[string]any)["example_index"] != float64(m.ExampleIndex) {
		t.Errorf("cell: %d %s", r.status, r.body[:min(300, len(r.body))])
	}
	for _, q := range []string{"", "?actual=1", "?actual=a&predicted=1", "?actual=10&predicted=1", "?actual=-1&predicted=1"} {
		if r := s.do(t, "GET", "/api/networks/"+id+"/evaluation/examples"+q, "", ""); r.status != 400 {
			t.Errorf("examples%s: %d %s", q, r.status, r.body)
		}
	}
}
