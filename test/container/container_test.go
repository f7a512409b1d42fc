//go:build linux

// Package container checks the Docker image without Docker: there is no
// Docker engine where the tests run, so this test does what `docker build`
// and `docker run` would, from the Dockerfile itself.
//
//   - It reads the Dockerfile and runs the build stage's `go build` command
//     lines exactly as written (only -o points elsewhere), in a copy of the
//     build context made with .dockerignore's rules, as the build stage sees
//     it at /src.
//   - It checks that the binaries are statically linked, as the distroless
//     static base (no libc) needs.
//   - It lays out the final stage's files as its COPY lines say (the
//     binaries, the models directory and its owner) under a fresh root
//     directory, and starts the ENTRYPOINT there as the image does: as the
//     Dockerfile's USER (when the test runs as root), in WORKDIR, with only
//     the Dockerfile's ENV (PORT replaced by a free port).
//   - It checks the running server over HTTP (status, page, create, saved
//     file, an example from the embedded MNIST, the OpenAPI document), the
//     HEALTHCHECK binary, graceful exit on SIGTERM, and that a restart finds
//     the saved network.
//
// It is skipped with -short: it builds the server.
package container

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/web"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// image is what the test learns from the Dockerfile.
type image struct {
	builds     []command         // the build stage's go build commands
	mkdirs     map[string]bool   // directories the build stage creates
	copies     []copyInst        // the final stage's COPY --from=<build stage>
	workdir    string            // the final stage's WORKDIR
	env        [][2]string       // the final stage's ENV, in order
	user       string            // the final stage's USER
	entrypoint []string          // ENTRYPOINT, exec form
	health     []string          // HEALTHCHECK CMD, exec form
	exposed    map[string]bool   // EXPOSE
	outputs    map[string]string // go build -o path in the build stage → file built by the test
}

type copyInst struct {
	line     int
	src, dst string
	chown    string
}

func readImage(t *testing.T, root string) *image {
	t.Helper()
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a build stage and a final stage, found %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" {
		t.Fatalf("Dockerfile: the build stage (FROM %s) has no name (FROM ... AS build)", build.from)
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Fatalf("Dockerfile: final stage FROM %s: this test emulates a distroless static base", final.from)
	}
	img := &image{mkdirs: map[string]bool{}, exposed: map[string]bool{}, outputs: map[string]string{}}

	for _, in := range build.insts {
		if in.cmd != "RUN" {
			continue
		}
		for _, c := range runCommands(t, in) {
			switch {
			case len(c.argv) >= 2 && c.argv[0] == "go" && c.argv[1] == "build":
				img.builds = append(img.builds, c)
			case c.argv[0] == "mkdir":
				for _, a := range c.argv[1:] {
					if !strings.HasPrefix(a, "-") {
						img.mkdirs[path.Clean(a)] = true
					}
				}
			}
		}
	}
	if len(img.builds) == 0 {
		t.Fatal("Dockerfile: the build stage has no go build command")
	}

	for _, in := range final.insts {
		switch in.cmd {
		case "COPY":
			c := copyInst{line: in.line}
			fields := strings.Fields(in.args)
			var from string
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				k, v, _ := strings.Cut(strings.TrimPrefix(fields[0], "--"), "=")
				switch k {
				case "from":
					from = v
				case "chown":
					c.chown = v
				default:
					t.Fatalf("Dockerfile:%d: COPY --%s is not supported by this test", in.line, k)
				}
				fields = fields[1:]
			}
			if from != build.name || len(fields) != 2 {
				t.Fatalf("Dockerfile:%d: want COPY --from=%s <one file or dir> <dest>, got COPY %s", in.line, build.name, in.args)
			}
			c.src, c.dst = path.Clean(fields[0]), fields[1]
			img.copies = append(img.copies, c)
		case "WORKDIR":
			img.workdir = in.args
		case "ENV":
			img.env = append(img.env, envPairs(t, in)...)
		case "USER":
			img.user = in.args
		case "ENTRYPOINT":
			img.entrypoint = execForm(t, in, in.args)
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile:%d: HEALTHCHECK without CMD", in.line)
			}
			img.health = execForm(t, in, strings.TrimSpace(cmd))
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				img.exposed[strings.TrimSuffix(p, "/tcp")] = true
			}
		case "VOLUME":
			// Railway refuses to build a Dockerfile with VOLUME.
			t.Fatalf("Dockerfile:%d: VOLUME breaks the Railway build (see docs/DEPLOY.md); declare volumes in compose or docker run", in.line)
		case "CMD", "LABEL", "ARG", "STOPSIGNAL":
		default:
			t.Fatalf("Dockerfile:%d: %s in the final stage is not emulated by this test", in.line, in.cmd)
		}
	}
	switch {
	case len(img.entrypoint) == 0:
		t.Fatal("Dockerfile: no ENTRYPOINT")
	case len(img.health) == 0:
		t.Fatal("Dockerfile: no HEALTHCHECK CMD")
	case img.workdir == "":
		t.Fatal("Dockerfile: no WORKDIR in the final stage")
	}
	return img
}

// uidGid parses USER uid:gid; the image must name its user by number.
func (img *image) uidGid(t *testing.T) (uint32, uint32) {
	t.Helper()
	u, g, ok := strings.Cut(img.user, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("Dockerfile: USER %q: want a numeric non-root uid:gid (Kubernetes runAsNonRoot needs numbers)", img.user)
	}
	return uint32(uid), uint32(gid)
}

func (img *image) envValue(key string) (string, bool) {
	v, ok := "", false
	for _, kv := range img.env {
		if kv[0] == key {
			v, ok = kv[1], true
		}
	}
	return v, ok
}

// goBuild runs the Dockerfile's go build commands in the build context ctxDir,
// each -o redirected into outDir, and records where each output went.
func (img *image) goBuild(t *testing.T, ctxDir, outDir string) {
	t.Helper()
	for _, c := range img.builds {
		argv := append([]string(nil), c.argv...)
		out := ""
		for i := 0; i < len(argv); i++ {
			switch {
			case argv[i] == "-o" && i+1 < len(argv):
				out = argv[i+1]
				argv[i+1] = filepath.Join(outDir, path.Base(out))
			case strings.HasPrefix(argv[i], "-o="):
				out = strings.TrimPrefix(argv[i], "-o=")
				argv[i] = "-o=" + filepath.Join(outDir, path.Base(out))
			}
		}
		if out == "" {
			t.Fatalf("Dockerfile: %q has no -o", c.text)
		}
		if _, dup := img.outputs[path.Clean(out)]; dup {
			t.Fatalf("Dockerfile: two go build commands write %s", out)
		}
		bin := filepath.Join(outDir, path.Base(out))
		img.outputs[path.Clean(out)] = bin

		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = ctxDir
		// The build stage's environment is the golang image's; here it is the
		// test's (its module and build caches), no go.work, plus the
		// command's own assignments (CGO_ENABLED=0).
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
		cmd.Env = append(cmd.Env, c.env...)
		start := time.Now()
		outText, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s (in a copy of the build context): %v\n%s", c.text, err, outText)
		}
		info, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("built %s: %s, %.1f MB, %.0f s", out, c.text, float64(info.Size())/1e6, time.Since(start).Seconds())
	}
}

// checkStatic fails unless file is an ELF executable without a program
// interpreter (PT_INTERP: the dynamic loader) and without shared libraries
// (DT_NEEDED): it has to run on a base image that has no libc and no loader.
// A static PIE (ET_DYN with a PT_DYNAMIC for its own relocations) would pass
// too; Go builds ET_EXEC here.
func checkStatic(t *testing.T, file string) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		t.Errorf("%s: ELF type %v, want an executable", file, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has a PT_INTERP program header: it needs a dynamic loader", file)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Errorf("%s: reading DT_NEEDED: %v", file, err)
	}
	if len(libs) > 0 {
		t.Errorf("%s: needs shared libraries %v", file, libs)
	}
}

// layout builds the final stage's file system under root as its WORKDIR and
// COPY lines say: container path /x is root/x.
func (img *image) layout(t *testing.T, root string, asRoot bool) {
	t.Helper()
	// WORKDIR creates the directory, owned by root.
	if err := os.MkdirAll(img.hostPath(root, img.workdir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range img.copies {
		dst := img.hostPath(root, c.dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if bin, ok := img.outputs[c.src]; ok {
			if err := copyFile(bin, dst, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if img.mkdirs[c.src] {
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Fatalf("Dockerfile:%d: COPY source %s is neither a go build output nor a directory the build stage makes", c.line, c.src)
		}
		if c.chown != "" && asRoot {
			u, g, _ := strings.Cut(c.chown, ":")
			uid, err1 := strconv.Atoi(u)
			gid, err2 := strconv.Atoi(g)
			if err1 != nil || err2 != nil {
				t.Fatalf("Dockerfile:%d: --chown=%s: want numeric uid:gid", c.line, c.chown)
			}
			if err := os.Lchown(dst, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// hostPath maps an absolute container path to its place under root.
func (img *image) hostPath(root, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(img.workdir, p)
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

// container is the server running as the image would run it.
type container struct {
	img    *image
	root   string
	port   int
	cred   *syscall.Credential
	cmd    *exec.Cmd
	done   chan error
	logs   *syncBuffer
	client *http.Client
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is the process environment: the Dockerfile's ENV, absolute paths
// mapped under root, PORT replaced as `docker run -e PORT=...` would.
func (c *container) env(port int) []string {
	var env []string
	for _, kv := range c.img.env {
		k, v := kv[0], kv[1]
		if k == "PORT" {
			continue
		}
		if path.IsAbs(v) {
			if _, err := os.Stat(c.img.hostPath(c.root, v)); err == nil {
				v = c.img.hostPath(c.root, v)
			}
		}
		env = append(env, k+"="+v)
	}
	return append(env, "PORT="+strconv.Itoa(port))
}

// start runs the ENTRYPOINT and waits until it answers /api/status.
func (c *container) start(t *testing.T) {
	t.Helper()
	argv := c.img.entrypoint
	cmd := exec.Command(c.img.hostPath(c.root, argv[0]), argv[1:]...)
	cmd.Dir = c.img.hostPath(c.root, c.img.workdir)
	cmd.Env = c.env(c.port)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	c.logs = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	done, exited := make(chan error, 1), make(chan struct{})
	c.cmd, c.done = cmd, done
	go func() {
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { // if the test ended without stop
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	var err error
	if !testutil.Poll(20*time.Second, 50*time.Millisecond, func() bool {
		select {
		case err := <-c.done:
			t.Fatalf("the server exited at start: %v\n%s", err, c.logs)
		default:
		}
		var resp *http.Response
		if resp, err = c.client.Get(c.url("/api/status")); err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}) {
		t.Fatalf("the server did not answer within 20 s: %v\n%s", err, c.logs)
	}
}

// stop sends SIGTERM, as docker stop does, and requires exit status 0 within
// 5 seconds.
func (c *container) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("after SIGTERM the server exited with %v, want 0\n%s", err, c.logs)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the server did not exit within 5 s of SIGTERM\n%s", c.logs)
	}
}

func (c *container) url(p string) string { return "http://127.0.0.1:" + strconv.Itoa(c.port) + p }

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (c *container) do(t *testing.T, method, p, body string) reply {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url(p), r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, p, err, c.logs)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, p, err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (r reply) object(t *testing.T, what string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %.300s", what, err, r.body)
	}
	return m
}

// runHealthcheck runs the HEALTHCHECK command with PORT=port, as the same
// user, and returns its exit code.
func (c *container) runHealthcheck(t *testing.T, port int) (int, string) {
	t.Helper()
	argv := c.img.health
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.img.hostPath(c.root, argv[0]), argv[1:]...)
	cmd.Dir = c.img.hostPath(c.root, c.img.workdir)
	cmd.Env = c.env(port)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	out, err := cmd.CombinedOutput()
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		return exitErr.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("running the healthcheck: %v", err)
	}
	return 0, string(out)
}

// tempRoot makes a directory that the container user can reach: it is
// removed at the end of the test.
func tempRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nnserver-container-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s is not searchable by other users: set TMPDIR to a directory that is", p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return dir
}

func TestContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("container check: builds the server as the Dockerfile does; skipped with -short")
	}
	testenv.Serial(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	root := testenv.ModuleRoot(t)
	img := readImage(t, root)
	uid, gid := img.uidGid(t)
	if port, ok := img.envValue("PORT"); !ok || !img.exposed[port] {
		t.Errorf("Dockerfile: ENV PORT=%q and EXPOSE %v should agree", port, img.exposed)
	}
	if _, ok := img.envValue("MODELS_DIR"); !ok {
		t.Error("Dockerfile: no ENV MODELS_DIR")
	}

	// docker build: the build context as .dockerignore leaves it.
	work := tempRoot(t)
	src := filepath.Join(work, "src")
	ctxFiles := copyContext(t, root, src)
	for _, must := range []string{"go.mod", "go.sum", "data/train-images-idx3-ubyte.gz", "web/index.html", "web/vendor/socket.io.min.js", "web/vendor/README.md"} {
		if !ctxFiles[must] {
			t.Errorf(".dockerignore leaves %s out of the build context; the build embeds it", must)
		}
	}
	for _, mustNot := range []string{".git", "test/protocol/node_modules", "models"} {
		if _, err := os.Stat(filepath.Join(root, mustNot)); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(src, mustNot)); err == nil {
			t.Errorf(".dockerignore lets %s into the build context", mustNot)
		}
	}
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	img.goBuild(t, src, out)
	for _, bin := range img.outputs {
		checkStatic(t, bin)
	}
	if t.Failed() {
		t.FailNow()
	}

	// docker run: the final stage's files under a fresh root, nothing else.
	asRoot := os.Geteuid() == 0
	fsRoot := filepath.Join(work, "rootfs")
	if err := os.Mkdir(fsRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	img.layout(t, fsRoot, asRoot)
	c := &container{
		img: img, root: fsRoot, port: testenv.FreePort(t),
		client: &http.Client{Timeout: 120 * time.Second},
	}
	if asRoot {
		c.cred = &syscall.Credential{Uid: uid, Gid: gid}
		t.Logf("running as uid %d, gid %d (the Dockerfile's USER)", uid, gid)
	} else {
		t.Logf("not root: running as the current user (uid %d), not as the Dockerfile's USER", os.Geteuid())
	}
	modelsDir, _ := img.envValue("MODELS_DIR")
	models := img.hostPath(fsRoot, modelsDir)
	c.start(t)

	// GET /api/status
	r := c.do(t, "GET", "/api/status", "")
	if st := r.object(t, "status"); r.status != 200 || st["status"] != "online" {
		t.Errorf("GET /api/status: %d %s, want 200 online", r.status, r.body)
	}

	// GET /: the embedded management page.
	r = c.do(t, "GET", "/", "")
	page, err := fs.ReadFile(web.Files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !bytes.Equal(r.body, page) {
		t.Errorf("GET /: %d %s, %d bytes; want 200 text/html, web/index.html (%d bytes)",
			r.status, r.header.Get("Content-Type"), len(r.body), len(page))
	}

	// POST /api/networks: created, and saved in MODELS_DIR as the container user.
	r = c.do(t, "POST", "/api/networks", `{"layer_sizes":[784,30,10]}`)
	created := r.object(t, "create")
	id, _ := created["network_id"].(string)
	if r.status != 200 || id == "" || created["status"] != "created" {
		t.Fatalf("POST /api/networks: %d %s\n%s", r.status, r.body, c.logs)
	}
	file := filepath.Join(models, id+".npz")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatalf("the new network was not saved in MODELS_DIR: %v\n%s", err, c.logs)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && asRoot && (st.Uid != uid || st.Gid != gid) {
		t.Errorf("%s is owned by %d:%d, want the container user %d:%d", file, st.Uid, st.Gid, uid, gid)
	}

	// An example: the MNIST test set is embedded in the binary. A random
	// network gets about a tenth of the digits right, so both kinds exist.
	r = c.do(t, "GET", "/api/networks/"+id+"/successful_example", "")
	ex := r.object(t, "successful_example")
	if r.status != 200 {
		t.Fatalf("GET successful_example: %d %s\n%s", r.status, r.body, c.logs)
	}
	png, err := base64.StdEncoding.DecodeString(fmt.Sprint(ex["image_data"]))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("successful_example: image_data is not a base64 PNG (%v)", err)
	}
	if ex["predicted_digit"] != ex["actual_digit"] {
		t.Errorf("successful_example: predicted %v, actual %v", ex["predicted_digit"], ex["actual_digit"])
	}

	// The OpenAPI document.
	r = c.do(t, "GET", "/api/openapi.json", "")
	if doc := r.object(t, "openapi.json"); r.status != 200 || !strings.HasPrefix(fmt.Sprint(doc["openapi"]), "3.") {
		t.Errorf("GET /api/openapi.json: %d, openapi %v", r.status, doc["openapi"])
	}

	// railway.json: built from this Dockerfile, its health check path answers.
	checkRailway(t, root, c)

	// HEALTHCHECK: healthy against the server, unhealthy against nothing.
	if code, out := c.runHealthcheck(t, c.port); code != 0 {
		t.Errorf("healthcheck against the server: exit %d, want 0: %s", code, out)
	}
	if code, out := c.runHealthcheck(t, testenv.FreePort(t)); code != 1 {
		t.Errorf("healthcheck against a closed port: exit %d, want 1: %s", code, out)
	} else {
		t.Logf("healthcheck against a closed port: exit 1: %s", strings.TrimSpace(out))
	}

	// docker stop: SIGTERM, exit 0 within 5 s.
	c.stop(t)
	if !strings.Contains(c.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" line in the logs:\n%s", c.logs)
	}

	// docker start again, same volume: the network is still there.
	c.start(t)
	r = c.do(t, "GET", "/api/networks", "")
	var list struct {
		Networks []struct {
			NetworkID string `json:"network_id"`
			Status    string `json:"status"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 {
		t.Fatalf("GET /api/networks after a restart: %d %s", r.status, r.body)
	}
	if len(list.Networks) != 1 || list.Networks[0].NetworkID != id || list.Networks[0].Status != "saved" {
		t.Errorf("after a restart GET /api/networks = %s, want only %s, saved", r.body, id)
	}
	c.stop(t)
}

// checkRailway checks railway.json against the repository and the running
// server: Railway builds the Dockerfile and polls healthcheckPath until it
// answers 200 before it routes to the new deployment: the readiness
// endpoint (the image's HEALTHCHECK probes liveness, /api/status).
func checkRailway(t *testing.T, root string, c *container) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "railway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Build struct {
			Builder        string `json:"builder"`
			DockerfilePath string `json:"dockerfilePath"`
		} `json:"build"`
		Deploy struct {
			HealthcheckPath    string `json:"healthcheckPath"`
			HealthcheckTimeout int    `json:"healthcheckTimeout"`
		} `json:"deploy"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("railway.json: %v", err)
	}
	if cfg.Build.Builder != "DOCKERFILE" || cfg.Build.DockerfilePath != "Dockerfile" {
		t.Errorf("railway.json: builder %q, dockerfilePath %q; want DOCKERFILE and Dockerfile", cfg.Build.Builder, cfg.Build.DockerfilePath)
	}
	if cfg.Deploy.HealthcheckPath != "/api/ready" || cfg.Deploy.HealthcheckTimeout < 10 {
		t.Errorf("railway.json: healthcheckPath %q, healthcheckTimeout %d", cfg.Deploy.HealthcheckPath, cfg.Deploy.HealthcheckTimeout)
		return
	}
	if r := c.do(t, "GET", cfg.Deploy.HealthcheckPath, ""); r.status != 200 {
		t.Errorf("railway.json healthcheckPath %s answers %d, want 200", cfg.Deploy.HealthcheckPath, r.status)
	}
}
