package lbtest

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/nginx.compose.conf from deploy/nginx.conf")

// composeConfig is what docker-compose.scale.yml's nginx runs: the shipped
// file with its three replicas, listening on 80 in its container.
var composeConfig = Config{Listen: "80", Backends: []string{"replica1:8000", "replica2:8000", "replica3:8000"}}

const composeHeader = `# GENERATED from deploy/nginx.conf for docker-compose.scale.yml (its
# replicas replica1-3:8000, port 80 in the container): do not edit; edit
# deploy/nginx.conf, then run go test ./internal/lbtest -run Compose -update.

`

// TestComposeConfigIsRendered: deploy/nginx.compose.conf is the shipped
// file rendered, not a copy drifting away from it (go test -update
// rewrites it).
func TestComposeConfigIsRendered(t *testing.T) {
	body, err := Render(DeployFile(t, "nginx.conf"), composeConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(composeHeader), body...)
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
