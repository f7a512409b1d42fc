package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Files, name)
	if err != nil {
		t.Fatalf("%s not embedded: %v", name, err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", name)
	}
	return string(b)
}

func TestFilesEmbedded(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css", "vendor/socket.io.min.js", "vendor/README.md"} {
		read(t, name)
	}
}

// TestPageReferencesResolve checks that every script and stylesheet the page
// loads is embedded and that nothing comes from another origin (no CDN).
func TestPageReferencesResolve(t *testing.T) {
	page := read(t, "index.html")
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("found only %d references in index.html", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "data:"):
			continue
		case strings.Contains(ref, "//"):
			t.Errorf("index.html loads %q from another origin", ref)
			continue
		}
		if _, err := fs.Stat(Files, strings.TrimPrefix(ref, "/")); err != nil {
			t.Errorf("index.html references %q, which is not embedded", ref)
		}
	}
}

func TestSocketIOClient(t *testing.T) {
	js := read(t, "vendor/socket.io.min.js")
	if !strings.HasPrefix(js, "/*!\n * Socket.IO v4.8.") {
		t.Errorf("vendor/socket.io.min.js does not start with the Socket.IO 4.8 licence header: %.60q", js)
	}
	if !strings.Contains(js[:200], "MIT License") {
		t.Error("licence header missing")
	}
}

// TestAppUsesProtocol guards the page's wiring against PROTOCOL.md: the
// Socket.IO connection options, the three events and the endpoints.
func TestAppUsesProtocol(t *testing.T) {
	js := read(t, "app.js")
	for _, want := range []string{
		`io({ path: "/socket.io/", transports: ["polling", "websocket"] })`,
		`"training_update"`, `"training_complete"`, `"training_error"`,
		`const API = "/api"`,
		`"/status"`, `"/networks"`, "`/networks/${encodeURIComponent(id)}/train`",
		"`/networks/${encodeURIComponent(id)}/${kind}_example`",
		"`/training/${encodeURIComponent(job.id)}`",
		`"successful"`, `"unsuccessful"`,
		"job_id", "network_output", "image_data", "predicted_digit", "actual_digit",
		"layer_sizes", "mini_batch_size", "learning_rate", "epochs",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js does not contain %s", want)
		}
	}
	// No other origin: the only URL is the SVG namespace.
	rest := strings.ReplaceAll(js, `"http://www.w3.org/2000/svg"`, "")
	for _, bad := range []string{"innerHTML", "http://", "https://"} {
		if strings.Contains(rest, bad) {
			t.Errorf("app.js contains %q", bad)
		}
	}
}
