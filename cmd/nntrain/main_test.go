package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/pkg/network"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// TestExitStatus can see the exit status of the real command.
const runMainEnv = "NNTRAIN_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "" {
		main()
		return
	}
	// Decompressing MNIST takes seconds under the race detector: once.
	loadEmbedded = testutil.MNIST
	os.Exit(m.Run())
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		args   []string
		status int
		stderr []string // what stderr must contain
	}{
		{[]string{"--help"}, 0, []string{"Usage of nntrain:", "-epochs int", "-batch int", "-eta float",
			"-lambda float", "-seed uint", "-layers string", "-init normal|scaled", "-cost quadratic|cross-entropy"}},
		{[]string{"-h"}, 0, []string{"Usage of nntrain:"}},
		{[]string{"--nope"}, 2, []string{"flag provided but not defined: -nope", "Usage of nntrain:"}},
		{[]string{"--epochs", "x"}, 2, []string{`invalid value "x" for flag -epochs`}},
		{[]string{"--layers", "784,0,10"}, 2, []string{"nntrain: --layers 784,0,10: network: layer 1 has 0 neurons"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			status := 0
			if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
				status = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Errorf("exit status %d, want %d; stderr:\n%s", status, tc.status, stderr.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			// Usage and errors go to stderr only, each said once.
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			if n := strings.Count(stderr.String(), "Usage of nntrain:"); n > 1 {
				t.Errorf("usage printed %d times", n)
			}
			if first, _, _ := strings.Cut(stderr.String(), "\n"); strings.Count(stderr.String(), first) > 1 {
				t.Errorf("message %q printed twice", first)
			}
		})
	}
}

func TestRunPrintsNielsenLines(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--epochs", "2", "--seed", "3"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	re := regexp.MustCompile(`^Epoch (\d): (\d+) / 10000, took \d+\.\d\d seconds$`)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != string(rune('1'+i)) {
			t.Errorf("line %d: %q", i+1, l)
		}
	}
	if want := "(normal initialisation), 2 epochs, batch 10, eta 3, quadratic cost, lambda 0, seed 3"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
}

// TestRunNetwork2 checks that --init, --cost and --lambda reach the
// library: the run must classify exactly as many test images correctly as
// SGD does with those options and the same seed.
func TestRunNetwork2(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--epochs", "1", "--seed", "3", "--json", "--init", "scaled", "--cost", "cross-entropy", "--lambda", "5", "--eta", "0.5"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var got epochLine
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}

	ds, err := loadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	net, err := network.New([]int{784, 30, 10}, network.InitScaled, rng)
	if err != nil {
		t.Fatal(err)
	}
	want := -1
	p := network.Params{Epochs: 1, BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 5}
	if _, err := network.SGD(context.Background(), net, ds.Training, ds.Test, p, rng,
		func(e network.Epoch) error { want = e.Correct; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.Correct != want {
		t.Errorf("nntrain classified %d correctly, SGD with the same options %d", got.Correct, want)
	}
	if got.Accuracy < 0.9 {
		t.Errorf("accuracy %v after one epoch, want at least 0.9", got.Accuracy)
	}
}

func TestRunJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--epochs", "1", "--seed", "3", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", out.String(), err)
	}
	if got["epoch"] != 1.0 || got["total"] != 10000.0 || got["accuracy"].(float64) < 0.85 ||
		got["correct"].(float64)/10000 != got["accuracy"] || got["elapsed_time"].(float64) <= 0 || len(got) != 5 {
		t.Errorf("got %v", got)
	}
	if errOut.Len() != 0 {
		t.Errorf("--json wrote to stderr: %q", errOut.String())
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--layers", "100,10"}, "the input layer must have 784 neurons"},
		{[]string{"--layers", "784,30,9"}, "the output layer must have 10 neurons"},
		{[]string{"--layers", "784"}, "1 layers, want at least 2"},
		{[]string{"--layers", "784,x,10"}, `"x" is not an integer`},
		{[]string{"--layers", "784,0,10"}, "layer 1 has 0 neurons"},
		{[]string{"--layers", "784,-5,10"}, "layer 1 has -5 neurons"},
		{[]string{"--layers", "784,4294967296,4294967296,10"}, "more weights and biases than an int can count"},
		{[]string{"--epochs", "0"}, "--epochs must be at least 1"},
		{[]string{"--epochs", "1.5"}, `invalid value "1.5" for flag -epochs`},
		{[]string{"--batch", "0"}, "--batch must be between"},
		{[]string{"--eta", "-1"}, "--eta must be a finite positive"},
		{[]string{"--eta", "NaN"}, "--eta must be a finite positive"},
		{[]string{"--eta", "+Inf"}, "--eta must be a finite positive"},
		{[]string{"--lambda", "-1"}, "--lambda must be a number from 0 to 1000"},
		{[]string{"--lambda", "1000.5"}, "--lambda must be a number from 0 to 1000"},
		{[]string{"--lambda", "NaN"}, "--lambda must be a number from 0 to 1000"},
		{[]string{"--cost", "log-likelihood"}, `invalid value "log-likelihood" for flag -cost`},
		{[]string{"--init", "xavier"}, `invalid value "xavier" for flag -init`},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		msg := ""
		if err != nil {
			msg = err.Error() + errOut.String()
		}
		if err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
		if code := exitCode(err, &errOut); code != 2 {
			t.Errorf("%v: exit status %d, want 2", tc.args, code)
		}
	}
}
