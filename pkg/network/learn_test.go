package network_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

// TestLearnsMNIST trains [784,30,10] with batch 10 and eta 3.0 as network.py
// does: at least 85% after one epoch, 92% after three.
//
// With N(0, 1) initialisation the first epoch is bimodal, in network.py as
// here: most initialisations reach 90–91%, but about one in three leaves an
// output neuron saturated for a while and ends the first epoch near 82%
// (network.py's own seed 1: 82.8%; ours, seeds 1–16: 82.9 82.2 90.8 83.1
// 90.6 91.3 90.7 89.9 91.2 91.4 81.8 90.5 90.9 78.7 90.5 90.7). Seeds 3, 6
// and 9 are from the common mode; seeds 1 and 2, from the slow one, are held
// to the three-epoch bar only. Under the race detector one seed of each
// mode runs.
func TestLearnsMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on all of MNIST")
	}
	ds := dataset(t)
	seeds := []uint64{1, 2, 3, 6, 9}
	if raceEnabled {
		seeds = []uint64{1, 3}
	}
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, seed))
		net, err := network.New([]int{784, 30, 10}, network.InitNormal, rng)
		if err != nil {
			t.Fatal(err)
		}
		var acc []float64
		_, err = network.SGD(context.Background(), net, ds.Training, ds.Test,
			network.Params{Epochs: 3, BatchSize: 10, Eta: 3.0}, rng,
			func(e network.Epoch) error { acc = append(acc, e.Accuracy); return nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: accuracy per epoch %v", seed, acc)
		if acc[0] < 0.85 && seed > 2 {
			t.Errorf("seed %d: %.2f%% after one epoch, want >= 85%%", seed, 100*acc[0])
		}
		if acc[2] < 0.92 {
			t.Errorf("seed %d: %.2f%% after three epochs, want >= 92%%", seed, 100*acc[2])
		}
	}
}

// TestLearnsWithEitherKernels trains [784,30,10] network2.py's way for one
// epoch over the first 10,000 training images, with the assembly kernels
// and with the Go loops: both must learn. (The equivalence tests check the
// maths on small data; this checks real training on the Go loops, which
// machines without AVX2 run. Seeds 1–6 give 89.5–91.0% either way; the
// subset keeps the Go loops quick under the race detector, which slows
// them some 25 times and the assembly not at all.)
func TestLearnsWithEitherKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on MNIST")
	}
	ds := dataset(t)
	network.ForEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 3))
		net, err := network.New([]int{784, 30, 10}, network.InitScaled, rng)
		if err != nil {
			t.Fatal(err)
		}
		var acc float64
		p := network.Params{Epochs: 1, BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 5}
		_, err = network.SGD(context.Background(), net, subset{ds.Training, 10_000}, ds.Test, p, rng,
			func(e network.Epoch) error { acc = e.Accuracy; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if acc < 0.85 {
			t.Errorf("%.2f%% after one epoch, want >= 85%%", 100*acc)
		}
	})
}

// subset is the first n examples of a data set.
type subset struct {
	network.Examples
	n int
}

func (s subset) Len() int { return s.n }

// TestLearnsNetwork2 trains [784,100,10] as network2.py's chapter 3 does:
// scaled initialisation, cross-entropy, eta 0.5, λ 5, mini-batches of 10.
// A float64 reference of the same maths reached 94.8–95.7% after one epoch
// over 9 seeds, and 97.3% after ten epochs for one: every seed must reach
// 94% after one epoch and seed 4 96.5% after ten. (Here seeds 1–6 give
// 95.0–95.9% after one epoch and 96.8–97.5%, mean 97.3%, after ten; seed 4,
// 97.5%, steady over the last epochs, leaves the widest margin.)
//
// Under the race detector (5–10 times slower) only seed 4's first epoch
// runs; go test -run Learn ./pkg/network runs it all.
func TestLearnsNetwork2(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on all of MNIST")
	}
	ds := dataset(t)
	tests := []struct {
		seed   uint64
		epochs int
	}{{4, 10}, {1, 1}, {2, 1}, {3, 1}, {5, 1}}
	if raceEnabled {
		tests = tests[:1]
		tests[0].epochs = 1
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("seed %d", tc.seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, tc.seed))
			net, err := network.New([]int{784, 100, 10}, network.InitScaled, rng)
			if err != nil {
				t.Fatal(err)
			}
			var acc []float64
			p := network.Params{Epochs: tc.epochs, BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 5}
			_, err = network.SGD(context.Background(), net, ds.Training, ds.Test, p, rng,
				func(e network.Epoch) error { acc = append(acc, e.Accuracy); return nil })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("accuracy per epoch %v", acc)
			if acc[0] < 0.94 {
				t.Errorf("%.2f%% after one epoch, want >= 94%%", 100*acc[0])
			}
			if tc.epochs == 10 && acc[9] < 0.965 {
				t.Errorf("%.2f%% after ten epochs, want >= 96.5%%", 100*acc[9])
			}
		})
	}
}
