// Package protocol runs the Node protocol suite (*.test.mjs) against the real
// server binary: real HTTP, and the npm socket.io-client the existing apps use.
//
// Run it with `go test ./test/protocol` (needs node and npm on PATH), or by
// hand: go build -o /tmp/server ./cmd/server && cd test/protocol && npm ci &&
// SERVER_BIN=/tmp/server npm test
//
// TestProtocolScaled runs the same files against the server in scaled mode
// (one replica on a throwaway Postgres: needs PostgreSQL 15 as well).
package protocol

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// testFiles are the suites, in the order they run (one at a time: the
// machine has few cores and every file trains networks).
var testFiles = []string{
	"training.test.mjs",
	"engineio.test.mjs",
	"broadcast.test.mjs",
	"persistence.test.mjs",
	"crash.test.mjs",
	"resume.test.mjs",
	"errors.test.mjs",
	"training-error.test.mjs",
	"transport-edges.test.mjs",
	"layers.test.mjs",
}

const suiteTimeout = 8 * time.Minute

func TestProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("protocol suite: builds the server and runs Node tests; skipped with -short")
	}
	testenv.Serial(t)
	node := testenv.Tool(t, "node", nodeInstall)
	dir := filepath.Join(testenv.ModuleRoot(t), "test", "protocol")
	testenv.NpmCI(t, dir, "socket.io-client")
	bin := testenv.ServerBinary(t)

	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	defer cancel()
	args := append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, testFiles...)
	testenv.Run(ctx, t, dir, []string{"SERVER_BIN=" + bin}, node, args...)
}

const nodeInstall = "the protocol suite needs Node.js 20+ and npm; go test -short skips it"

// scaledSuiteTimeout bounds the scaled run: the crash tests wait for the
// takeover of each killed job (TAKEOVER_AFTER=2s in the wrapper).
const scaledSuiteTimeout = 10 * time.Minute

// TestProtocolScaled runs the same Node files against one replica in scaled
// mode (DATABASE_URL set; models in the suite's MODELS_DIR, which the
// scaled mode shares between replicas). SERVER_BIN is a wrapper that gives
// each MODELS_DIR a database of its own on a throwaway Postgres
// (internal/pgtest), created on first use: the suite restarts servers on
// the same models directory and expects its networks back, and its other
// files start from an empty one. Without Postgres it skips, saying what to
// install; under CI it fails.
func TestProtocolScaled(t *testing.T) {
	if testing.Short() {
		t.Skip("protocol suite in scaled mode: builds the server, starts Postgres and runs Node tests; skipped with -short")
	}
	testenv.Serial(t)
	node := testenv.Tool(t, "node", nodeInstall)
	pg := pgtest.Start(t)
	psql := findPsql(t)
	dir := filepath.Join(testenv.ModuleRoot(t), "test", "protocol")
	testenv.NpmCI(t, dir, "socket.io-client")
	bin := testenv.ServerBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), scaledSuiteTimeout)
	defer cancel()
	tmp := t.TempDir()

	u, err := url.Parse(pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	admin := *u
	admin.Path = "/postgres"
	wrapper := filepath.Join(tmp, "scaled-server")
	script := fmt.Sprintf(`#!/bin/sh
# One database per MODELS_DIR, created on first use, then the real server
# in scaled mode on it.
set -eu
db="nn_$(printf '%%s' "$MODELS_DIR" | md5sum | cut -c1-16)"
exists=$(%[1]s -X -q -tA -d %[2]s -c "SELECT 1 FROM pg_database WHERE datname = '$db'")
if [ "$exists" != 1 ]; then
  # Two servers started at once on one directory may race: "already
  # exists" is fine, and any other failure shows when the server connects.
  %[1]s -X -q -d %[2]s -c "CREATE DATABASE $db" >/dev/null 2>&1 || true
fi
DATABASE_URL=%[3]s TAKEOVER_AFTER=2s exec %[4]s "$@"
`, shellQuote(psql), shellQuote(admin.String()),
		shellQuote("postgres://"+u.User.String()+"@"+u.Host+"/")+`"$db"`+shellQuote("?sslmode=disable"), shellQuote(bin))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	// Both modes keep the contract the same way, a stopping server's jobs
	// included (interrupted, then resumed): every file runs as in single
	// mode.
	args := append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, testFiles...)
	testenv.Run(ctx, t, dir, []string{"SERVER_BIN=" + wrapper}, node, args...)
}

// findPsql returns Postgres's psql: beside the server binaries Debian
// installs, else on PATH.
func findPsql(t *testing.T) string {
	t.Helper()
	if ps, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(ps) > 0 {
		return ps[len(ps)-1]
	}
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	testutil.SkipOrFail(t, "psql is not installed: "+pgtest.Install)
	return ""
}

// shellQuote quotes s for sh, in single quotes.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
