package digit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// bombFixtures are the attack images of issue 15, kept in testdata/bombs
// for the tests of other packages (the API answers them end to end).
// UPDATE_FIXTURES=1 go test ./pkg/digit -run TestBombFixtures rewrites
// them; otherwise the test checks that the committed files are what the
// generators make.
func bombFixtures(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"scan-bomb.jpg":             scanBomb(4096, 4096, 1500),
		"ycck-bomb.jpg":             cmykBomb(),
		"png16-interlaced-4096.png": pngImage{w: 4096, h: 4096, depth: 16, ct: 6, interlaced: true, ink: cross(64, 64)}.encode(t),
	}
}

func TestBombFixtures(t *testing.T) {
	dir := filepath.Join("testdata", "bombs")
	for name, want := range bombFixtures(t) {
		path := filepath.Join(dir, name)
		if os.Getenv("UPDATE_FIXTURES") != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what the generator makes (%v): UPDATE_FIXTURES=1 go test ./pkg/digit -run TestBombFixtures", path, err)
		}
	}
}
