package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// The page's files are text (HTML, JavaScript, CSS) that gzip shrinks to
// about a quarter. They are embedded and never change while the server
// runs, so each is compressed once, when the router is built (about 200 KB
// in, 55 KB kept; a few milliseconds), and a client that accepts gzip gets
// those bytes; any other gets the file as it is, from http.FileServerFS.

// compressible are the extensions worth compressing.
var compressible = map[string]bool{".html": true, ".js": true, ".css": true, ".json": true, ".svg": true, ".md": true, ".txt": true}

// gzipped is one file, compressed.
type gzipped struct {
	body        []byte
	contentType string
	etag        string // a strong validator of the compressed bytes
}

// staticFiles serves fsys, compressed where that helps.
type staticFiles struct {
	plain http.Handler
	gz    map[string]gzipped // by path without the leading slash; "index.html" for /
}

func newStaticFiles(fsys fs.FS) (*staticFiles, error) {
	s := &staticFiles{plain: http.FileServerFS(fsys), gz: map[string]gzipped{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !compressible[path.Ext(name)] {
			return err
		}
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(raw); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() >= len(raw) {
			return nil // nothing gained
		}
		sum := sha256.Sum256(buf.Bytes())
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = http.DetectContentType(raw)
		}
		s.gz[name] = gzipped{body: buf.Bytes(), contentType: ct,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `-gz"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compress the page's files: %w", err)
	}
	return s, nil
}

// ServeHTTP answers GET and HEAD of a file (the caller checked that it is
// one): compressed when the client accepts gzip and a compressed copy
// exists, else as http.FileServerFS does.
func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	g, ok := s.gz[name]
	w.Header().Add("Vary", "Accept-Encoding")
	// FileServerFS redirects /index.html to /: keep that, plainly.
	if !ok || !acceptsGzip(r.Header.Get("Accept-Encoding")) || strings.HasSuffix(r.URL.Path, "/index.html") {
		s.plain.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", g.contentType)
	h.Set("Content-Encoding", "gzip")
	h.Set("ETag", g.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, g.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(g.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(g.body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip: a
// "gzip" or "*" coding whose q is not 0.
func acceptsGzip(header string) bool {
	ok := false
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, found := strings.Cut(strings.TrimSpace(p), "=")
			if found && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if coding == "gzip" {
			return q > 0 // an explicit gzip decides
		}
		ok = q > 0
	}
	return ok
}

// etagMatches reports whether an If-None-Match header names etag (weakly,
// as RFC 9110 compares for If-None-Match), or is "*".
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		t := strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
