// Command nntrain trains a network on MNIST from the shell, printing one line
// per epoch the way network.py does:
//
//	Epoch 1: 9132 / 10000, took 0.21 seconds
//
// or, with --json, one JSON object per epoch.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports err on stderr, unless the flag package has already, and
// returns the exit status for it: 0 for success and for --help (after the
// usage, on stderr like every message), 2 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if !errors.As(err, new(parseError)) {
		fmt.Fprintln(stderr, "nntrain:", err)
	}
	return 2
}

// parseError is an error of flag parsing, which the flag package has
// printed with the usage.
type parseError struct{ error }

func (e parseError) Unwrap() error { return e.error }

type options struct {
	layers   []int
	init     network.Init
	params   network.Params
	seed     uint64
	json     bool
	mnistDir string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var opt options
	fs := flag.NewFlagSet("nntrain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	layers := fs.String("layers", "784,30,10", "layer sizes, comma-separated: 784 inputs first, 10 outputs last")
	fs.TextVar(&opt.init, "init", network.InitNormal,
		"`normal|scaled` initialisation: weights from N(0, 1) as network.py, or N(0, 1/inputs) as network2.py")
	fs.TextVar(&opt.params.Cost, "cost", network.Quadratic,
		"`quadratic|cross-entropy` cost: network.py's or network2.py's")
	epochs := fs.Int("epochs", 30, "epochs to train")
	batch := fs.Int("batch", 10, "mini-batch size")
	eta := fs.Float64("eta", 3.0, "learning rate")
	lambda := fs.Float64("lambda", 0, fmt.Sprintf("L2 regularisation parameter, 0 to %d (network2.py's lmbda; 0: none)", network.MaxLambda))
	seed := fs.Uint64("seed", 0, "random seed for weights and shuffling (0: a random one)")
	asJSON := fs.Bool("json", false, "print one JSON object per epoch")
	dir := fs.String("mnist-dir", os.Getenv("MNIST_DIR"), "directory with the MNIST .gz files (default: the copy built in; env MNIST_DIR)")
	if err := fs.Parse(args); err != nil {
		return options{}, parseError{err}
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	sizes, err := parseLayers(*layers)
	if err != nil {
		return options{}, err
	}
	p := opt.params
	p.Epochs, p.BatchSize, p.Eta, p.Lambda = *epochs, *batch, *eta, *lambda
	switch {
	case p.Epochs < 1:
		return options{}, fmt.Errorf("--epochs must be at least 1, got %d", p.Epochs)
	case p.BatchSize < 1 || p.BatchSize > mnist.TrainSize:
		return options{}, fmt.Errorf("--batch must be between 1 and %d, got %d", mnist.TrainSize, p.BatchSize)
	case !(p.Eta > 0) || math.IsInf(p.Eta, 0):
		return options{}, fmt.Errorf("--eta must be a finite positive number, got %v", p.Eta)
	case !(p.Lambda >= 0 && p.Lambda <= network.MaxLambda):
		return options{}, fmt.Errorf("--lambda must be a number from 0 to %d, got %v", network.MaxLambda, p.Lambda)
	}
	if err := p.Validate(); err != nil { // what the flags above do not cover
		return options{}, err
	}
	s := *seed
	if s == 0 {
		s = rand.Uint64()
	}
	opt.layers, opt.params, opt.seed, opt.json, opt.mnistDir = sizes, p, s, *asJSON, *dir
	return opt, nil
}

func parseLayers(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	sizes := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("--layers: %q is not an integer", p)
		}
		sizes = append(sizes, n)
	}
	if err := network.CheckSizes(sizes, 0, 0); err != nil {
		return nil, fmt.Errorf("--layers %s: %w", s, err)
	}
	if err := fitsMNIST(sizes); err != nil {
		return nil, fmt.Errorf("--layers %s: %w", s, err)
	}
	return sizes, nil
}

// fitsMNIST reports whether a network of these sizes (at least two) reads
// MNIST's images and answers with its digits.
func fitsMNIST(sizes []int) error {
	if in := sizes[0]; in != mnist.Pixels {
		return fmt.Errorf("the input layer must have %d neurons, one per MNIST pixel, got %d", mnist.Pixels, in)
	}
	if out := sizes[len(sizes)-1]; out != mnist.Classes {
		return fmt.Errorf("the output layer must have %d neurons, one per digit, got %d", mnist.Classes, out)
	}
	return nil
}

// loadEmbedded loads the MNIST copy built in; tests load it once for all.
var loadEmbedded = mnist.LoadEmbedded

// epochLine is the --json output, one per epoch.
type epochLine struct {
	Epoch       int     `json:"epoch"`
	Correct     int     `json:"correct"`
	Total       int     `json:"total"`
	Accuracy    float64 `json:"accuracy"`
	ElapsedTime float64 `json:"elapsed_time"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	var ds *mnist.Dataset
	if opt.mnistDir != "" {
		ds, err = mnist.LoadDir(opt.mnistDir)
	} else {
		ds, err = loadEmbedded()
	}
	if err != nil {
		return fmt.Errorf("load MNIST: %w", err)
	}
	if !opt.json {
		p := opt.params
		fmt.Fprintf(stderr, "MNIST loaded in %.2f seconds; training %v (%s initialisation), %d epochs, batch %d, eta %g, %s cost, lambda %g, seed %d\n",
			time.Since(start).Seconds(), opt.layers, opt.init, p.Epochs, p.BatchSize, p.Eta, p.Cost, p.Lambda, opt.seed)
	}
	rng := rand.New(rand.NewPCG(opt.seed, opt.seed))
	net, err := network.New(opt.layers, opt.init, rng)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	_, err = network.SGD(ctx, net, ds.Training, ds.Test, opt.params, rng, func(e network.Epoch) error {
		if opt.json {
			return enc.Encode(epochLine{e.Epoch, e.Correct, e.Total, e.Accuracy, e.Seconds})
		}
		_, err := fmt.Fprintf(stdout, "Epoch %d: %d / %d, took %.2f seconds\n", e.Epoch, e.Correct, e.Total, e.Seconds)
		return err
	})
	return err
}
