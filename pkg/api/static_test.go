package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, GZIP;q=0.5", true},
		{"deflate, br", false},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false}, // an explicit gzip decides
		{"identity", false},
		{"x-gzip", false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestStaticFilesCompressed: a client that accepts gzip gets the page's
// text files compressed (the same bytes once inflated, with a validator
// that answers 304), any other client the files as they are; files that
// do not shrink, and the redirect of /index.html, are served plainly.
func TestStaticFilesCompressed(t *testing.T) {
	js := []byte(strings.Repeat("function chart() { return 'a line of JavaScript'; }\n", 400))
	fsys := fstest.MapFS{
		"index.html":            {Data: []byte("<!doctype html><title>MNIST</title>" + strings.Repeat("<p>text</p>", 200))},
		"app.js":                {Data: js},
		"tiny.css":              {Data: []byte("a{}")},
		"vendor/socket.io.js":   {Data: js},
		"image.png":             {Data: []byte("\x89PNG\r\n\x1a\n" + strings.Repeat("x", 1000))},
		"vendor/README.md":      {Data: []byte(strings.Repeat("words ", 300))},
		"data/not-compressible": {Data: []byte("x")},
	}
	s, err := newStaticFiles(fsys)
	if err != nil {
		t.Fatal(err)
	}
	get := func(method, path, accept, inm string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w
	}
	inflate := func(t *testing.T, b []byte) []byte {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		path, file, contentType string
		compressed              bool
	}{
		{"/", "index.html", "text/html; charset=utf-8", true},
		{"/app.js", "app.js", "text/javascript; charset=utf-8", true},
		{"/vendor/socket.io.js", "vendor/socket.io.js", "text/javascript; charset=utf-8", true},
		{"/vendor/README.md", "vendor/README.md", "", true},
		{"/tiny.css", "tiny.css", "text/css; charset=utf-8", false},
		{"/image.png", "image.png", "image/png", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			want := fsys[tc.file].Data
			w := get("GET", tc.path, "gzip, deflate, br", "")
			if w.Code != 200 || !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
				t.Fatalf("GET: %d %v", w.Code, w.Header())
			}
			if tc.contentType != "" && w.Header().Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tc.contentType)
			}
			if !tc.compressed {
				if w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), want) {
					t.Errorf("want the file as it is: %v, %d bytes", w.Header(), w.Body.Len())
				}
				return
			}
			if w.Header().Get("Content-Encoding") != "gzip" || w.Body.Len() >= len(want) ||
				w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Fatalf("want gzip, smaller, with its length: %v, %d bytes of %d", w.Header(), w.Body.Len(), len(want))
			}
			if got := inflate(t, w.Body.Bytes()); !bytes.Equal(got, want) {
				t.Errorf("inflated: %d bytes, not the file's %d", len(got), len(want))
			}
			etag := w.Header().Get("ETag")
			if nm := get("GET", tc.path, "gzip", etag); nm.Code != http.StatusNotModified || nm.Body.Len() != 0 {
				t.Errorf("If-None-Match %s: %d, %d bytes", etag, nm.Code, nm.Body.Len())
			}
			if nm := get("GET", tc.path, "gzip", `"other", W/`+etag); nm.Code != http.StatusNotModified {
				t.Errorf("If-None-Match listing it weakly: %d", nm.Code)
			}
			if h := get("HEAD", tc.path, "gzip", ""); h.Code != 200 || h.Body.Len() != 0 || h.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Errorf("HEAD: %d, %d bytes, %v", h.Code, h.Body.Len(), h.Header())
			}
			for _, accept := range []string{"", "br, deflate", "gzip;q=0"} {
				p := get("GET", tc.path, accept, "")
				if p.Code != 200 || p.Header().Get("Content-Encoding") != "" || !bytes.Equal(p.Body.Bytes(), want) {
					t.Errorf("Accept-Encoding %q: %d %v, %d bytes; want the file as it is", accept, p.Code, p.Header(), p.Body.Len())
				}
			}
		})
	}
	if w := get("GET", "/index.html", "gzip", ""); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "./" {
		t.Errorf("GET /index.html: %d %v, want FileServer's redirect to ./", w.Code, w.Header())
	}
}
