package web

import (
	"io/fs"
	"testing"
)

// TestFilesEmbedded checks that the page's files are in the binary. What
// the page does is tested in a real browser by test/browser.
func TestFilesEmbedded(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css", "layers.js", "layers.css", "vendor/socket.io.min.js", "vendor/README.md"} {
		b, err := fs.ReadFile(Files, name)
		if err != nil {
			t.Errorf("%s not embedded: %v", name, err)
		} else if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
}
