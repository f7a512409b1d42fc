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
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "nntrain:", err)
		}
		os.Exit(2)
	}
}

type options struct {
	layers   []int
	params   network.Params
	seed     uint64
	json     bool
	mnistDir string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("nntrain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	layers := fs.String("layers", "784,30,10", "layer sizes, comma-separated: 784 inputs first, 10 outputs last")
	epochs := fs.Int("epochs", 30, "epochs to train")
	batch := fs.Int("batch", 10, "mini-batch size")
	eta := fs.Float64("eta", 3.0, "learning rate")
	seed := fs.Uint64("seed", 0, "random seed for weights and shuffling (0: a random one)")
	asJSON := fs.Bool("json", false, "print one JSON object per epoch")
	dir := fs.String("mnist-dir", os.Getenv("MNIST_DIR"), "directory with the MNIST .gz files (default: the copy built in; env MNIST_DIR)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	sizes, err := parseLayers(*layers)
	if err != nil {
		return options{}, err
	}
	p := network.Params{Epochs: *epochs, BatchSize: *batch, Eta: *eta}
	switch {
	case p.Epochs < 1:
		return options{}, fmt.Errorf("--epochs must be at least 1, got %d", p.Epochs)
	case p.BatchSize < 1 || p.BatchSize > mnist.TrainSize:
		return options{}, fmt.Errorf("--batch must be between 1 and %d, got %d", mnist.TrainSize, p.BatchSize)
	case !(p.Eta > 0) || math.IsInf(p.Eta, 0):
		return options{}, fmt.Errorf("--eta must be a finite positive number, got %v", p.Eta)
	}
	s := *seed
	if s == 0 {
		s = rand.Uint64()
	}
	return options{layers: sizes, params: p, seed: s, json: *asJSON, mnistDir: *dir}, nil
}

func parseLayers(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	sizes := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--layers: %q is not a positive integer", p)
		}
		sizes = append(sizes, n)
	}
	switch {
	case len(sizes) < 2:
		return nil, errors.New("--layers needs at least an input and an output layer")
	case sizes[0] != mnist.Pixels:
		return nil, fmt.Errorf("--layers must start with %d (MNIST's pixels), got %d", mnist.Pixels, sizes[0])
	case sizes[len(sizes)-1] != mnist.Classes:
		return nil, fmt.Errorf("--layers must end with %d (MNIST's digits), got %d", mnist.Classes, sizes[len(sizes)-1])
	}
	return sizes, nil
}

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
		ds, err = mnist.LoadEmbedded()
	}
	if err != nil {
		return fmt.Errorf("load MNIST: %w", err)
	}
	if !opt.json {
		fmt.Fprintf(stderr, "MNIST loaded in %.2f seconds; training %v, %d epochs, batch %d, eta %g, seed %d\n",
			time.Since(start).Seconds(), opt.layers, opt.params.Epochs, opt.params.BatchSize, opt.params.Eta, opt.seed)
	}
	rng := rand.New(rand.NewPCG(opt.seed, opt.seed))
	net, err := network.New(opt.layers, network.InitNormal, rng)
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
