package network_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

var loadOnce = sync.OnceValues(mnist.LoadEmbedded)

func dataset(tb testing.TB) *mnist.Dataset {
	tb.Helper()
	ds, err := loadOnce()
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func benchmarkEpoch(b *testing.B, sizes []int) {
	ds := dataset(b)
	rng := rand.New(rand.NewPCG(1, 1))
	net, err := network.New(sizes, network.InitNormal, rng)
	if err != nil {
		b.Fatal(err)
	}
	tr := network.NewTrainer(net, 10, 3.0, rng)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.TrainEpoch(context.Background(), ds.Training); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEpoch* time the training part of one epoch (50,000 images,
// mini-batches of 10, eta 3.0).
func BenchmarkEpoch784x30x10(b *testing.B)     { benchmarkEpoch(b, []int{784, 30, 10}) }
func BenchmarkEpoch784x100x10(b *testing.B)    { benchmarkEpoch(b, []int{784, 100, 10}) }
func BenchmarkEpoch784x128x64x10(b *testing.B) { benchmarkEpoch(b, []int{784, 128, 64, 10}) }

// BenchmarkEvaluate times classifying the 10,000 test images with [784,30,10].
func BenchmarkEvaluate(b *testing.B) {
	ds := dataset(b)
	net, err := network.New([]int{784, 30, 10}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		net.Evaluate(ds.Test)
	}
}
