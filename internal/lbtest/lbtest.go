// Package lbtest runs the load balancers of deploy/ in front of test
// backends: StartNginx and StartHAProxy take deploy/nginx.conf and
// deploy/haproxy.cfg, plain configuration files ready for three replicas
// on 127.0.0.1:8001-8003, replace their replicas and listen address (as a
// person deploying them does, see Render), and run Debian's nginx and
// haproxy on them. The committed files are the only source of the
// configuration: what the tests run is what is deployed.
//
// Where nginx or haproxy is not installed the tests skip, saying what to
// install; when the environment variable CI is set, they fail instead.
package lbtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// Install says how to get what this package needs.
const Install = "install nginx and HAProxy (apt-get install -y nginx-light haproxy, or run .ci/install-engines)"

// startTimeout bounds how long a load balancer may take to listen.
const startTimeout = 30 * time.Second

// DeployFile returns the path of a file in the module's deploy directory,
// found by walking up from the working directory to go.mod.
func DeployFile(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy", name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("lbtest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Binary returns the path of nginx or haproxy, or skips t (fails it under
// CI) if it is not installed. Debian installs both in /usr/sbin, which a
// test's PATH may lack.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	testutil.SkipOrFail(t, fmt.Sprintf("lbtest: %s is not installed: %s", name, Install))
	return ""
}

// StartNginx runs nginx with deploy/nginx.conf in front of backends
// (host:port each) until the test ends, and returns its URL,
// http://127.0.0.1:port.
func StartNginx(t testing.TB, backends []string) string {
	t.Helper()
	bin := Binary(t, "nginx")
	dir := tempDir(t)
	port := freePort(t)
	conf := render(t, "nginx.conf", Config{Listen: "127.0.0.1:" + strconv.Itoa(port), Backends: backends, Prefix: dir}, dir)
	// -e: the error log nginx writes before it has read the configuration
	// (the compiled-in default is under /var/log).
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;")
	start(t, cmd, port, filepath.Join(dir, "error.log"))
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// StartHAProxy runs haproxy with deploy/haproxy.cfg in front of backends
// (host:port each) until the test ends, and returns its URL,
// http://127.0.0.1:port.
func StartHAProxy(t testing.TB, backends []string) string {
	t.Helper()
	bin := Binary(t, "haproxy")
	dir := tempDir(t)
	port := freePort(t)
	conf := render(t, "haproxy.cfg", Config{Listen: "127.0.0.1:" + strconv.Itoa(port), Backends: backends, Prefix: dir}, dir)
	// -db: in the foreground, logging to stderr.
	cmd := exec.Command(bin, "-f", conf, "-db")
	start(t, cmd, port, filepath.Join(dir, "output.log"))
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// tempDir returns a directory removed when the test ends. Unlike
// t.TempDir's, its parents are not private to us: nginx's workers run as
// an unprivileged user when we are root, and write temporary files in it.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lbtest-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// render renders deploy/<name> with c into dir and returns the file's path.
func render(t testing.TB, name string, c Config, dir string) string {
	t.Helper()
	b, err := Render(DeployFile(t, name), c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// start starts cmd, its output going to logPath, waits until it accepts
// connections on port, and stops it when the test ends: SIGTERM (both stop
// at once, without waiting for open connections), then SIGKILL to its
// process group if it lingers.
func start(t testing.TB, cmd *exec.Cmd, port int, logPath string) {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// A group of its own, so that nginx's workers are killed with their
	// master if it must be killed; and killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("lbtest: starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	name := filepath.Base(cmd.Path)
	t.Cleanup(func() {
		pid := cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
		}
	})
	if err := waitListening(port, exited); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("lbtest: %s: %v; its output:\n%s", name, err, log)
	}
}

// waitListening polls until something accepts connections on port, or the
// process exits, or startTimeout passes.
func waitListening(port int, exited <-chan struct{}) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("exited before listening")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %w", addr, startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond) // the polling interval
	}
}

func freePort(t testing.TB) int { return testutil.FreePort(t) }
