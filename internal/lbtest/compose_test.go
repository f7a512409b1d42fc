package lbtest

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/nginx.compose.conf from deploy/nginx.conf")

// composeConfig is what docker-compose.scale.yml's nginx runs: the template
// rendered for its three replicas.
var composeConfig = Config{Listen: "80", Backends: []string{"replica1:8000", "replica2:8000", "replica3:8000"}}

// TestComposeConfigIsRendered: deploy/nginx.compose.conf is the template
// rendered, not a copy drifting away from it (go test -update rewrites it).
func TestComposeConfigIsRendered(t *testing.T) {
	want, err := Render(DeployFile(t, "nginx.conf"), composeConfig)
	if err != nil {
		t.Fatal(err)
	}
	path := DeployFile(t, "nginx.compose.conf")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not deploy/nginx.conf rendered for docker-compose.scale.yml: run go test ./internal/lbtest -run Compose -update", path)
	}
}
