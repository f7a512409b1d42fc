// Package pgtest starts throwaway PostgreSQL servers for tests, from the
// server binaries installed on the machine (Debian's postgresql-15).
//
// Start gives a test a server of its own, stopped when the test ends: use it
// to stop, kill, freeze or restart Postgres under the code being tested.
// NewDatabase gives a test a fresh database on one server shared by the
// whole test binary, which the package's TestMain starts and stops through Main; that
// is the cheap way to isolate tests that only need a database.
//
// Each server listens on a free loopback port, keeps its data and socket in
// a temporary directory, runs with fsync off (the data is thrown away), and
// requires a password over TCP, so that tests see the URLs production sees.
// Under root the server runs as the "postgres" user, since Postgres refuses
// to run as root.
//
// Where no Postgres is installed the tests skip, saying what to install;
// when the environment variable CI is set, they fail instead: CI must run
// them.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/jackc/pgx/v5"
)

// Install says how to get what this package needs.
const Install = "install PostgreSQL 15 (apt-get install -y postgresql-15, or run .ci/install-engines)"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 60 * time.Second

// Postgres is a running (or stopped) server with one database of its own.
type Postgres struct {
	bin      string // directory holding initdb and postgres
	dir      string // our temporary directory: data/, sock/, postgres.log
	port     int
	password string
	db       string
	cred     *syscall.Credential // the postgres user's, when we run as root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	frozen []int         // the processes Freeze stopped, postmaster first
}

// errMissing marks what is missing from the machine: the test skips, or
// fails under CI.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

// skipOrFail skips t because of err, unless CI is set, or err is a real
// failure rather than something missing from the machine.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	var m errMissing
	if !errors.As(err, &m) {
		t.Fatal(err)
	}
	testutil.SkipOrFail(t, err.Error())
}

// Start starts a server of the test's own with a database, and stops it and
// removes its files when the test ends. It takes one to two seconds.
func Start(t testing.TB) *Postgres {
	t.Helper()
	p, err := launch()
	if p != nil {
		t.Cleanup(p.remove)
	}
	if err != nil {
		skipOrFail(t, err)
	}
	return p
}

// launch creates, starts and waits for a server with a database "test". If
// it returns a non-nil *Postgres, its remove must be called.
func launch() (*Postgres, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	p := &Postgres{bin: bin, dir: dir, password: rand.Text(), db: "test", cred: cred}
	if err := p.initdb(); err != nil {
		return p, err
	}
	p.port, err = freePort()
	if err != nil {
		return p, err
	}
	if err := p.start(); err != nil {
		return p, err
	}
	if err := p.exec(context.Background(), "postgres", "CREATE DATABASE test"); err != nil {
		return p, fmt.Errorf("pgtest: creating the test database: %w", err)
	}
	return p, nil
}

// findBinaries returns the directory holding initdb and postgres: the newest
// version under /usr/lib/postgresql (Debian's layout), else the PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errMissing{"pgtest: no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or in PATH: " + Install}
}

// version is the major version in a path like /usr/lib/postgresql/15/bin.
func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential returns nil when we are not root, else the credential of
// the postgres user, which Debian's package creates.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errMissing{fmt.Sprintf("pgtest: running as root, and Postgres refuses to run as root, but there is no user \"postgres\" to run it as (%v): %s", err, Install)}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) sockDir() string { return filepath.Join(p.dir, "sock") }
func (p *Postgres) logPath() string { return filepath.Join(p.dir, "postgres.log") }

// command returns a command that runs as the server's user, in p.dir, with
// a minimal environment: inherited PG* variables must not redirect it.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC", "HOME=" + p.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

// chown gives path to the server's user, when we are root.
func (p *Postgres) chown(path string) error {
	if p.cred == nil {
		return nil
	}
	return os.Chown(path, int(p.cred.Uid), int(p.cred.Gid))
}

func (p *Postgres) initdb() error {
	// os.MkdirTemp made p.dir 0700 and ours; the server's user must be able
	// to enter it (the data directory inside stays 0700 and its own).
	if err := os.Chmod(p.dir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	pwfile := filepath.Join(p.dir, "pwfile")
	for _, err := range []error{
		os.Mkdir(p.sockDir(), 0o700), p.chown(p.sockDir()),
		os.Mkdir(p.dataDir(), 0o700), p.chown(p.dataDir()),
		os.WriteFile(pwfile, []byte(p.password+"\n"), 0o600), p.chown(pwfile),
	} {
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	defer os.Remove(pwfile)
	// Trust on the socket (only this user can reach it: sock/ is 0700), a
	// password over TCP, as a deployed server would ask.
	cmd := p.command("initdb", "-D", p.dataDir(), "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// start starts the server on p.port and waits until it accepts connections.
func (p *Postgres) start() error {
	logf, err := os.OpenFile(p.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := p.command("postgres", "-D", p.dataDir(), "-p", strconv.Itoa(p.port), "-k", p.sockDir(),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed if this test binary dies without cleaning up, so that no
	// server outlives it (its backends notice and exit).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return p.waitReady(exited)
}

// waitReady polls until the server accepts a connection, it exits, or
// startTimeout passes. After a kill, the server first recovers from the
// crash; a restart may also wait for the old backends to go.
func (p *Postgres) waitReady(exited chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited before accepting connections; its log:\n%s", p.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var c *pgx.Conn
		c, err = pgx.Connect(ctx, p.url("postgres"))
		if err == nil {
			c.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		time.Sleep(20 * time.Millisecond) // the polling interval
	}
	p.crash()
	return fmt.Errorf("pgtest: postgres on port %d did not accept connections within %v (last: %v); its log:\n%s", p.port, startTimeout, err, p.logTail())
}

func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(p.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// exec runs sql in database db as the superuser.
func (p *Postgres) exec(ctx context.Context, db, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.url(db))
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}

func (p *Postgres) url(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", p.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// URL returns the URL of the server's database, with the superuser's
// password in it: postgres://postgres:…@127.0.0.1:port/test?sslmode=disable.
func (p *Postgres) URL() string { return p.url(p.db) }

// Port returns the TCP port the server listens on; it keeps it across
// restarts.
func (p *Postgres) Port() int { return p.port }

// Password returns the superuser's password, for tests that check it is
// never logged.
func (p *Postgres) Password() string { return p.password }

// NewDatabase creates an empty database on the server and returns its URL.
// It is dropped when the test ends.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := "t_" + strings.ToLower(rand.Text())
	if err := p.exec(t.Context(), "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating a database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections a test left open.
		if err := p.exec(context.Background(), "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && p.Running() {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return p.url(name)
}

// Running reports whether the server process is running.
func (p *Postgres) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the postmaster, unless it has exited. It returns the
// channel closed when the postmaster has exited, nil if none was started.
func (p *Postgres) signal(sig syscall.Signal) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.exited:
		// Gone, and reaped: its pid may be another process's by now.
		return p.exited
	default:
	}
	syscall.Kill(p.cmd.Process.Pid, sig)
	return p.exited
}

// crash kills the postmaster and its children with SIGKILL. The children
// are found by their parent pid, not by process group: each backend makes
// itself a group leader. The postmaster is stopped first, so that it forks
// no child while they are found and killed.
func (p *Postgres) crash() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.exited:
		return p.exited
	default:
	}
	pid := p.cmd.Process.Pid
	p.frozen = nil // killed below: their pids are no longer ours to signal
	syscall.Kill(pid, syscall.SIGSTOP)
	for _, child := range children(pid) {
		syscall.Kill(child, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return p.exited
}

// children returns the pids of the processes whose parent is pid, from
// /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so parse after the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Freeze stops the server as a hung machine would: the postmaster and
// every backend get SIGSTOP. Open connections stay open and their
// statements go unanswered; new connections are accepted by the kernel
// (the listen backlog) but never answered either. Thaw resumes it; it is
// thawed when the test ends in any case, so that it can be stopped.
func (p *Postgres) Freeze(t testing.TB) {
	t.Helper()
	t.Cleanup(p.Thaw)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		t.Fatal("pgtest: Freeze of a server never started")
	}
	select {
	case <-p.exited:
		t.Fatal("pgtest: Freeze of a server that has exited")
	default:
	}
	// The postmaster first, so that it forks no backend while they are
	// found and stopped.
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("pgtest: freezing postgres: %v", err)
	}
	p.frozen = append([]int{pid}, children(pid)...)
	for _, child := range p.frozen[1:] {
		syscall.Kill(child, syscall.SIGSTOP)
	}
}

// Thaw resumes a server frozen by Freeze, backends first; it does nothing
// if the server is not frozen.
func (p *Postgres) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.frozen) - 1; i >= 0; i-- {
		syscall.Kill(p.frozen[i], syscall.SIGCONT)
	}
	p.frozen = nil
}

// Stop shuts the server down as an operator would (a fast shutdown: clients
// are disconnected, and what was committed is kept), and waits for it to
// exit; a frozen server is thawed first. It is killed if it takes longer
// than 30 seconds. Stopping a stopped server does nothing.
func (p *Postgres) Stop() {
	p.Thaw() // a frozen server would not act on the signal
	exited := p.signal(syscall.SIGINT)
	if exited == nil {
		return
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		<-p.crash()
	}
}

// Kill kills the server and its backends with SIGKILL, as a crash would,
// and waits for the postmaster to exit. What was committed survives (the
// operating system has it): Restart recovers it.
func (p *Postgres) Kill() {
	if exited := p.crash(); exited != nil {
		<-exited
	}
}

// Restart starts the server again on the same data directory and port,
// stopping it first if it is running, and waits until it accepts
// connections.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	// A killed server's backends may take a moment to go; the new postmaster
	// refuses to start while they hold the old shared memory. Retry, every
	// 50 ms, for up to startTimeout.
	var err error
	if !testutil.Poll(startTimeout, 50*time.Millisecond, func() bool {
		err = p.start()
		return err == nil
	}) {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// remove stops the server and deletes its files.
func (p *Postgres) remove() {
	p.Stop()
	os.RemoveAll(p.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// The server shared by a test binary's tests, started on first use.
var shared struct {
	mu   sync.Mutex
	main bool // Main is running the tests
	p    *Postgres
	err  error
}

// Main runs a test binary's tests and then stops the shared server, if one
// was started. A package whose tests call NewDatabase needs
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.p != nil {
		shared.p.remove()
	}
	return code
}

// NewDatabase returns the URL of a new, empty database on the test binary's
// shared server (started by the first call), dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Shared returns the test binary's shared server, starting it on first use.
// Tests must not stop it: those that do want Start.
func Shared(t testing.TB) *Postgres {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("pgtest: the shared server needs the package's TestMain to call pgtest.Main")
	}
	if shared.p == nil && shared.err == nil {
		p, err := launch()
		if err != nil && p != nil {
			p.remove()
		}
		shared.p, shared.err = p, err
		if err != nil {
			shared.p = nil
		}
	}
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	return shared.p
}
