package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// waitJob polls a job until it ends (a deadline guards against a hang).
func (s *server) waitJob(t *testing.T, job string) map[string]any {
	t.Helper()
	var info map[string]any
	testutil.Eventually(t, 60*time.Second, "job "+job+" to end", func() bool {
		info = s.do(t, "GET", "/api/training/"+job, "", "").json(t)
		switch info["status"] {
		case "completed", "failed", "cancelled":
			return true
		}
		return false
	})
	return info
}

func (s *server) doBytes(t *testing.T, method, path, contentType string, body []byte) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	return response{w.Code, w.Header(), w.Body.String()}
}

// TestHistoryDownloadImport: a trained network's history lists every
// epoch; its download is the stored .npz; importing that file gives a new
// network with the same accuracy, listed, trainable, giving examples.
func TestHistoryDownloadImport(t *testing.T) {
	s := newServer(t)
	id := s.do(t, "POST", "/api/networks", jsonCT, `{"seed":11,"init":"scaled"}`).json(t)["network_id"].(string)
	job1 := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":1,"seed":5}`).json(t)["job_id"].(string)
	s.waitJob(t, job1)
	job2 := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":2,"learning_rate":0.5,"mini_batch_size":20,"seed":6}`).json(t)["job_id"].(string)
	info := s.waitJob(t, job2)

	var hist struct {
		NetworkID string `json:"network_id"`
		Epochs    []struct {
			Epoch         int     `json:"epoch"`
			JobID         string  `json:"job_id"`
			Accuracy      float64 `json:"accuracy"`
			Correct       int     `json:"correct"`
			ElapsedTime   float64 `json:"elapsed_time"`
			LearningRate  float64 `json:"learning_rate"`
			MiniBatchSize int     `json:"mini_batch_size"`
			Cost          string  `json:"cost"`
			Seed          uint64  `json:"seed"`
			FinishedAt    string  `json:"finished_at"`
		} `json:"epochs"`
	}
	r := s.do(t, "GET", "/api/networks/"+id+"/history", "", "")
	if err := jsonUnmarshal(r.body, &hist); err != nil || r.status != 200 || hist.NetworkID != id || len(hist.Epochs) != 3 {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	for i, e := range hist.Epochs {
		wantJob, wantLR, wantBatch, wantSeed := job1, 3.0, 10, uint64(5)
		if i > 0 {
			wantJob, wantLR, wantBatch, wantSeed = job2, 0.5, 20, 6
		}
		_, err := time.Parse(time.RFC3339, e.FinishedAt)
		if e.Epoch != i+1 || e.JobID != wantJob || e.LearningRate != wantLR || e.MiniBatchSize != wantBatch ||
			e.Seed != wantSeed || e.Cost != "quadratic" || e.Accuracy != float64(e.Correct)/10000 || e.ElapsedTime <= 0 || err != nil {
			t.Errorf("epoch %d: %+v", i+1, e)
		}
	}
	if last := hist.Epochs[2].Accuracy; last != info["accuracy"] {
		t.Errorf("history ends at %v, the job at %v", last, info["accuracy"])
	}

	r = s.do(t, "GET", "/api/networks/"+id+"/download", "", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/octet-stream" ||
		r.header.Get("Content-Disposition") != `attachment; filename="`+id+`.npz"` || !strings.HasPrefix(r.body, "PK") {
		t.Fatalf("download: %d %v", r.status, r.header)
	}
	file := []byte(r.body)
	meta, net, err := modelfile.Decode(bytes.NewReader(file), int64(len(file)), modelfile.Limits{})
	if err != nil || meta.ID != id || meta.Init != "scaled" || len(meta.History) != 3 {
		t.Fatalf("the download does not decode as the network: %+v, %v", meta, err)
	}

	imported := s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", file).json(t)
	newID, _ := imported["network_id"].(string)
	if imported["status"] != "imported" || newID == "" || newID == id || imported["init"] != "scaled" || imported["seed"] != 11.0 {
		t.Fatalf("import: %v", imported)
	}
	list := s.do(t, "GET", "/api/networks", "", "").json(t)["networks"].([]any)
	if len(list) != 2 {
		t.Fatalf("listed %d networks after the import", len(list))
	}
	for _, raw := range list {
		n := raw.(map[string]any)
		if n["network_id"] == newID && (n["accuracy"] != info["accuracy"] || n["epochs_trained"] != 3.0) {
			t.Errorf("imported network listed as %v, want accuracy %v", n, info["accuracy"])
		}
	}
	if r := s.do(t, "GET", "/api/networks/"+newID+"/successful_example", "", ""); r.status != 200 {
		t.Errorf("examples of the imported network: %d %s", r.status, r.body)
	}
	job3 := s.do(t, "POST", "/api/networks/"+newID+"/train", jsonCT, `{"epochs":1}`).json(t)["job_id"].(string)
	if end := s.waitJob(t, job3); end["status"] != "completed" {
		t.Errorf("training the imported network: %v", end)
	}

	// Nielsen's layout, as multipart: a network made elsewhere.
	nielsen := nielsenNPZ(t, net.(*network.Network))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "net.npz")
	fw.Write(nielsen)
	mw.Close()
	r = s.doBytes(t, "POST", "/api/networks/import", mw.FormDataContentType(), body.Bytes())
	m := r.json(t)
	if r.status != 200 || m["status"] != "imported" || m["init"] != nil || m["seed"] != nil {
		t.Fatalf("Nielsen import: %d %s", r.status, r.body)
	}
	for _, raw := range s.do(t, "GET", "/api/networks", "", "").json(t)["networks"].([]any) {
		n := raw.(map[string]any)
		if n["network_id"] == m["network_id"] && n["accuracy"] != info["accuracy"] {
			t.Errorf("Nielsen import listed as %v, want accuracy %v", n, info["accuracy"])
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// nielsenNPZ writes n as network.py's users save it with NumPy:
// weights_<l> (n_out, n_in) and biases_<l> (n_out, 1), float64.
func nielsenNPZ(t *testing.T, n *network.Network) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	write := func(name string, shape string, vals []float64) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		dict := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }", shape)
		pad := 64 - (10+len(dict)+1)%64
		dict += strings.Repeat(" ", pad%64) + "\n"
		hdr := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
		w.Write(append(hdr, dict...))
		for _, v := range vals {
			binary.Write(w, binary.LittleEndian, math.Float64bits(v))
		}
	}
	for l := range n.NumLayers() {
		wl := n.Weights(l)
		rows, cols := wl.Dims()
		var ws []float64
		for r := range rows {
			ws = append(ws, wl.RawRowView(r)...)
		}
		write(fmt.Sprintf("weights_%d.npy", l), fmt.Sprintf("(%d, %d)", rows, cols), ws)
		write(fmt.Sprintf("biases_%d.npy", l), fmt.Sprintf("(%d, 1)", rows), n.Biases(l).RawVector().Data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImportRefusals: every bad file is a 4xx naming the problem, and none
// touches the models directory.
func TestImportRefusals(t *testing.T) {
	s := newServer(t)
	testdata := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "modelfile", "testdata", "import", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small := nielsenNPZ(t, mustNet(t, []int{784, 3, 9}))
	for _, tc := range []struct {
		name, ct string
		body     []byte
		status   int
		want     string
	}{
		{"empty", "application/octet-stream", nil, 400, "empty"},
		{"not a zip", "application/octet-stream", []byte("hello"), 400, "not a network this server can import"},
		{"an .npy", "application/octet-stream", testdata("not_npz.npy"), 400, "not a network"},
		{"NaN", "application/octet-stream", testdata("nan.npz"), 400, "not a network"},
		{"wrong chain", "application/octet-stream", testdata("wrong_chain.npz"), 400, "not a network"},
		{"zip bomb", "application/octet-stream", testdata("bomb.npz"), 400, "not a network"},
		{"4-3-2, not MNIST", "application/octet-stream", testdata("nielsen.npz"), 400, "does not fit"},
		{"9 outputs", "application/octet-stream", small, 400, "must end with 10"},
		{"JSON", "application/json", []byte(`{}`), 415, "Content-Type must be"},
		{"multipart without file", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n"), 400, "no field named file"},
		{"too large", "application/octet-stream", make([]byte, modelfile.MaxImportSize+1), 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.doBytes(t, "POST", "/api/networks/import", tc.ct, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("%d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
		})
	}
	if des, err := os.ReadDir(s.store.Dir()); err != nil || len(des) != 0 {
		t.Errorf("refused imports left files behind: %v %v", des, err)
	}
}

// mustNet returns a network of these sizes with all weights zero.
func mustNet(t *testing.T, sizes []int) *network.Network { return testutil.ZeroNetwork(t, sizes) }

// oursNPZ is a model file in our format holding n and m (m.ID is set).
func oursNPZ(t *testing.T, m modelfile.Meta, n *network.Network) []byte {
	t.Helper()
	m.ID, m.Sizes = "0b1f7c9e-7c53-4c1e-9a51-3e4a3f2f6d11", n.Sizes()
	if m.CreatedAt.IsZero() {
		m.CreatedAt, m.UpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	var buf bytes.Buffer
	if err := modelfile.Encode(&buf, m, n); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rezip rewrites meta.json of an .npz with edit applied: files that
// modelfile.Encode would never write.
func rezip(t *testing.T, npz []byte, edit func(meta map[string]any)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(npz), int64(len(npz)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == "meta.json" {
			var meta map[string]any
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if err := d.Decode(&meta); err != nil {
				t.Fatal(err)
			}
			edit(meta)
			if b, err = json.Marshal(meta); err != nil {
				t.Fatal(err)
			}
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImportedLives: a network's life is at most modelfile.MaxHistory epochs,
// counting those its queued jobs will train; imported files cannot claim
// more, nor a seed a browser cannot hold.
func TestImportedLives(t *testing.T) {
	s := newServer(t)
	net := mustNet(t, []int{784, 30, 10})
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"epochs_trained 2^63-1", func(m map[string]any) { m["epochs_trained"] = json.Number("9223372036854775807") }, "epochs_trained"},
		{"epochs_trained MaxHistory+1", func(m map[string]any) { m["epochs_trained"] = modelfile.MaxHistory + 1 }, "epochs_trained"},
		{"seed 2^53", func(m map[string]any) { m["seed"] = json.Number("9007199254740992") }, "seed"},
		{"seed 2^64-1", func(m map[string]any) { m["seed"] = json.Number("18446744073709551615") }, "seed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := rezip(t, oursNPZ(t, modelfile.Meta{Init: "normal"}, net), tc.edit)
			r := s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", body)
			if r.status != 400 || !strings.Contains(r.body, tc.want) {
				t.Errorf("%d %s, want 400 naming %s", r.status, r.body, tc.want)
			}
		})
	}

	// One epoch short of a life: one 1-epoch job is accepted, the next is
	// refused whether the first is still queued, running or done.
	almost := oursNPZ(t, modelfile.Meta{Init: "normal", Trained: true, EpochsTrained: modelfile.MaxHistory - 1}, net)
	r := s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", almost)
	if r.status != 200 {
		t.Fatalf("import of a network at %d epochs: %d %s", modelfile.MaxHistory-1, r.status, r.body)
	}
	id := r.json(t)["network_id"].(string)
	one := `{"epochs": 1, "seed": 1}`
	if r := s.do(t, "POST", "/api/networks/"+id+"/train", "application/json", one); r.status != 200 {
		t.Fatalf("the last epoch of its life: %d %s", r.status, r.body)
	}
	for range 2 {
		if r := s.do(t, "POST", "/api/networks/"+id+"/train", "application/json", one); r.status != 409 || !strings.Contains(r.body, "at most 100000 epochs") {
			t.Errorf("an epoch beyond its life: %d %s", r.status, r.body)
		}
	}
}

// TestNetworkWhoseOutputsAreNotNumbers: finite weights so large that a
// neuron's sum can overflow (∞ − ∞ = NaN) are refused at import with a 400,
// and no answer is ever a 200 without a body.
func TestNetworkWhoseOutputsAreNotNumbers(t *testing.T) {
	s := newServer(t)
	ws := []*mat.Dense{mat.NewDense(30, 784, nil), mat.NewDense(10, 30, nil)}
	for j := range 784 {
		ws[0].Set(0, j, math.MaxFloat64*float64(1-2*(j%2))) // ±1.7e308
	}
	big, err := network.FromParams([]int{784, 30, 10}, ws, []*mat.VecDense{mat.NewVecDense(30, nil), mat.NewVecDense(10, nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"Nielsen's layout", nielsenNPZ(t, big)},
		{"ours", oursNPZ(t, modelfile.Meta{Init: "normal"}, big)},
	} {
		r := s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", tc.body)
		if r.status != 400 || !strings.Contains(r.body, "would not be numbers") {
			t.Errorf("%s: %d %s, want 400", tc.name, r.status, r.body)
		}
	}
}
