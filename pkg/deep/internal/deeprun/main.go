// Command deeprun trains a pkg/deep network on MNIST and prints each
// epoch's seconds and test accuracy: the runs behind docs/DEEP.md.
//
//	go run ./pkg/deep/internal/deeprun -epochs 1 -batch 10 -eta 0.03 -lambda 0.1
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

func main() {
	var (
		epochs   = flag.Int("epochs", 1, "epochs")
		batch    = flag.Int("batch", 10, "mini-batch size")
		eta      = flag.Float64("eta", 0.03, "learning rate")
		lambda   = flag.Float64("lambda", 0.1, "L2 regularisation (network3's lmbda)")
		seed     = flag.Uint64("seed", 1, "seed")
		net      = flag.String("net", "conv20:5:relu,pool2,conv40:5:relu,pool2,dense100:relu:0.5,softmax10", "layers")
		expand   = flag.Bool("expand", false, "train on the expanded set (250,000)")
		scratch  = flag.Int("scratch", 0, "ScratchBytes")
		trainN   = flag.Int("train", 50000, "training images (the first n)")
		validat  = flag.Bool("validation", false, "evaluate on the validation set (images 50,000–59,999) instead of the test set")
		trainers = flag.Int("trainers", 1, "concurrent trainers (same network and seed); prints the peak RSS at the end")
		alsoVal  = flag.Bool("also-validation", false, "print the validation accuracy after every epoch too")
	)
	flag.Parse()
	layers, err := parse(*net)
	if err != nil {
		fail(err)
	}
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		fail(err)
	}
	train, test := ds.Training.Slice(0, *trainN), ds.Test
	if *validat {
		test = ds.Validation
	}
	rng := rand.New(rand.NewPCG(*seed, *seed))
	n, err := deep.New(layers, network.InitScaled, rng)
	if err != nil {
		fail(err)
	}
	fmt.Printf("layers %v\nsizes %v, %d parameters, GOMAXPROCS %d\n", layers, n.Sizes(), n.ParamCount(), runtime.GOMAXPROCS(0))
	p := deep.Params{Epochs: *epochs, BatchSize: *batch, Eta: *eta, Lambda: *lambda, Expand: *expand, ScratchBytes: *scratch}
	fmt.Printf("TrainerBytes %d; peak RSS before training %d MiB\n", deep.TrainerBytes(layers, p), peakRSS()>>20)
	if *trainers > 1 {
		var wg sync.WaitGroup
		for i := range *trainers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(*seed, *seed))
				_, err := deep.SGD(context.Background(), n, train, test, p, r, func(e deep.Epoch) error {
					fmt.Printf("trainer %d: epoch %d: %.2f s, accuracy %.4f\n", i, e.Epoch, e.Seconds, e.Accuracy)
					return nil
				})
				if err != nil {
					fail(err)
				}
			})
		}
		wg.Wait()
		fmt.Printf("peak RSS %d MiB\n", peakRSS()>>20)
		return
	}
	start := time.Now()
	_, err = deep.SGD(context.Background(), n, train, test, p, rng, func(e deep.Epoch) error {
		line := fmt.Sprintf("epoch %d: %.2f s, accuracy %.4f (%d/%d)", e.Epoch, e.Seconds, e.Accuracy, e.Correct, e.Total)
		if *alsoVal {
			c, err := e.Network.Evaluate(ds.Validation)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(", validation %.4f", float64(c)/float64(ds.Validation.Len()))
		}
		fmt.Printf("%s, wall %.0f s\n", line, time.Since(start).Seconds())
		return nil
	})
	if err != nil {
		fail(err)
	}
	fmt.Printf("peak RSS %d MiB\n", peakRSS()>>20)
}

// peakRSS returns the process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10 // KiB on Linux
}

// parse reads layers written as conv20:5:relu, pool2, dense100:relu:0.5,
// softmax10.
func parse(s string) ([]deep.Layer, error) {
	var layers []deep.Layer
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(f, ":")
		var l deep.Layer
		var err error
		switch {
		case strings.HasPrefix(parts[0], "conv"):
			l.Kind = deep.Conv
			_, err = fmt.Sscanf(parts[0], "conv%d", &l.Filters)
			if err == nil && len(parts) == 3 {
				_, err = fmt.Sscanf(parts[1], "%d", &l.Size)
				l.Activation = deep.Activation(parts[2])
			}
		case strings.HasPrefix(parts[0], "pool"):
			l.Kind = deep.Pool
			_, err = fmt.Sscanf(parts[0], "pool%d", &l.Size)
		case strings.HasPrefix(parts[0], "dense"):
			l.Kind = deep.Dense
			_, err = fmt.Sscanf(parts[0], "dense%d", &l.Size)
			if len(parts) > 1 {
				l.Activation = deep.Activation(parts[1])
			}
			if len(parts) > 2 && err == nil {
				_, err = fmt.Sscanf(parts[2], "%g", &l.Dropout)
			}
		case strings.HasPrefix(parts[0], "softmax"):
			l.Kind = deep.Softmax
			_, err = fmt.Sscanf(parts[0], "softmax%d", &l.Size)
			if len(parts) > 1 && err == nil {
				_, err = fmt.Sscanf(parts[1], "%g", &l.Dropout)
			}
		default:
			err = fmt.Errorf("unknown layer %q", f)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", f, err)
		}
		layers = append(layers, l)
	}
	return layers, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
