// Package testutil is what the tests of every package share: a free port,
// a skip that fails under CI, the MNIST data set loaded once, waiting for a
// condition, and a clock a test moves by hand. Test code only.
package testutil

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
	"gonum.org/v1/gonum/mat"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// InCI reports whether the tests run in CI (CI set), where every test must
// run: what would be skipped elsewhere fails.
func InCI() bool { return os.Getenv("CI") != "" }

// SkipOrFail skips the test, saying why; under CI it fails instead: CI must
// run every test, and a missing tool or an unprovokable condition there is
// a broken machine, not a reason to pass.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why + "; in CI (CI is set) this test must run, not skip")
	}
	t.Skip(why + "; skipping")
}

// MNIST returns the data set built into the binary, loaded once for the
// whole test binary.
var MNIST = sync.OnceValues(mnist.LoadEmbedded)

// LoadMNIST is MNIST, failing the test if the data cannot be loaded.
func LoadMNIST(t testing.TB) *mnist.Dataset {
	t.Helper()
	ds, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// Every is how often Eventually checks its condition.
const Every = 5 * time.Millisecond

// Eventually waits until cond is true, checking it every few milliseconds
// (Every), for conditions no event announces; after limit (a guard against
// a hang, not a timing assertion) it fails the test naming what was
// awaited. cond runs on the caller's goroutine, so it may itself call
// t.Fatal to fail at once when what is awaited can no longer come (the
// server exited, the job failed).
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(limit, Every, cond) {
		t.Fatalf("waited %v for %s", limit, what)
	}
}

// Poll is the loop of Eventually, leaving the failure to its caller: it
// checks cond, sleeping every between checks (0: check again at once, for
// a condition that takes its own time, as a request does), until cond is
// true, and reports whether it became true; it gives up, reporting false,
// at the first false check that ends after limit.
// Use Eventually unless its message will not do: when the failure must
// say what was last seen (a status, a log), when the checks must be
// spaced out (each a request to a server under test), or when the wait
// ending is no failure (waiting for something to settle before
// measuring it). Like Eventually's, cond may call t.Fatal.
func Poll(limit, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// Clock is a time a test sets and moves. Its Now can stand in for
// time.Now. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ZeroNetwork returns a network of these layer sizes whose weights and
// biases are all zero: every output is 0.5, whatever the input.
func ZeroNetwork(t testing.TB, sizes []int) *network.Network {
	t.Helper()
	var ws []*mat.Dense
	var bs []*mat.VecDense
	for l := 1; l < len(sizes); l++ {
		ws = append(ws, mat.NewDense(sizes[l], sizes[l-1], nil))
		bs = append(bs, mat.NewVecDense(sizes[l], nil))
	}
	n, err := network.FromParams(sizes, ws, bs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
