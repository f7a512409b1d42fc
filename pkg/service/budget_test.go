package service

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/model"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// allocated returns the bytes f allocates, with the garbage collector off:
// an upper bound of the most it holds at once.
func allocated(f func()) int64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// TestBudgetEstimates: what each kind of work reserves from the memory
// budget is at least what it allocates, and not wildly more, on networks of
// each shape: wide, deep and narrow, a very wide hidden layer.
func TestBudgetEstimates(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates hundreds of megabytes")
	}
	ds, err := loadMNIST()
	if err != nil {
		t.Fatal(err)
	}
	shapes := [][]int{
		{784, 30, 10},
		{784, 2000, 10},
		{784, 100, 100, 100, 10},
		{784, 1, 100000, 1, 10},
	}
	check := func(t *testing.T, what string, got, estimate int64) {
		t.Helper()
		t.Logf("%-9s allocates %11d bytes, reserves %11d (%.2f×)", what, got, estimate, float64(estimate)/float64(max(got, 1)))
		if got > estimate {
			t.Errorf("%s allocates %d bytes, more than the %d it reserves", what, got, estimate)
		}
		if estimate > 4*got+1<<20 {
			t.Errorf("%s reserves %d bytes for the %d it allocates: too loose to be useful", what, estimate, got)
		}
	}
	// A history decoded with its network: every record counted.
	t.Run("[784 30 10] with 20000 epochs recorded", func(t *testing.T) {
		sizes := []int{784, 30, 10}
		net, err := network.New(sizes, network.InitScaled, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().UTC()
		const n = 20_000
		recs := make([]modelfile.EpochRecord, n)
		for i := range recs {
			recs[i] = modelfile.EpochRecord{Epoch: i + 1, JobID: "3f8e2d1c-7b6a-4e5f-9d8c-0a1b2c3d4e5f", Accuracy: 0.123456789,
				Correct: 1234, Total: 10000, ElapsedTime: 0.123456789, LearningRate: 0.123456789, MiniBatchSize: 50000,
				Cost: "cross_entropy", Lambda: 0.123456789, Seed: 1<<53 - 1, FinishedAt: at}
		}
		m := modelfile.Meta{ID: "0b1f7c9e-7c53-4c1e-9a51-3e4a3f2f6d11", Sizes: sizes, Init: "scaled", Trained: true,
			EpochsTrained: n, History: recs, CreatedAt: at, UpdatedAt: at}
		dir := newMemStore()
		if err := dir.Save(context.Background(), m, net); err != nil {
			t.Fatal(err)
		}
		got := allocated(func() {
			if _, _, err := dir.Load(context.Background(), m.ID); err != nil {
				t.Fatal(err)
			}
		})
		check(t, "load", got, loadBytes(model.Arch{Sizes: sizes}, n))
		// A restore of the snapshot of its last epoch: read as a load, and
		// the history copied with the restore's record.
		if err := dir.Snapshot(context.Background(), m.ID, n); err != nil {
			t.Fatal(err)
		}
		got = allocated(func() {
			sm, _, err := dir.LoadSnapshot(context.Background(), m.ID, n)
			if err != nil {
				t.Fatal(err)
			}
			_ = restoredHistory(recs, sm.History[n-1])
		})
		check(t, "restore", got, restoreBytes(model.Arch{Sizes: sizes}, n, n))
	})
	for _, sizes := range shapes {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			net, err := network.New(sizes, network.InitScaled, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			st := &state{net: net}
			// What these allocate does not grow with the examples (but for
			// the analysis's 5 bytes an image, counted): a slice of the test
			// set keeps the wide networks quick.
			test := ds.Test.Slice(0, 2500)
			// One block of the analysis: the blocks after it reuse
			// everything but their outputs, garbage once read.
			got := allocated(func() {
				if _, err := analyse(context.Background(), st, test.Slice(0, analysisBlock)); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "analysis", got, analysisBytes(model.Arch{Sizes: sizes}))

			x := make([]float64, 784)
			got = allocated(func() {
				if _, err := net.FeedForward(x); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "run", got, runBytes(model.Arch{Sizes: sizes}))

			// A job of one epoch on a slice of the training set (the
			// allocations do not grow with the examples), evaluating on
			// the whole test set, mini-batches of 10 and of 50,000.
			for _, batch := range []int{10, 50_000} {
				p := TrainParams{Epochs: 1, MiniBatch: batch, LearningRate: 0.1, Cost: CostCrossEntropy}
				np := p.network(DefaultLimits().JobScratchBytes, nil)
				got = allocated(func() {
					_, err := network.SGD(context.Background(), net, ds.Training.Slice(0, 200), test, np, newRand(1), nil)
					if err != nil {
						t.Fatal(err)
					}
				})
				check(t, "job", got, jobBytes(model.Arch{Sizes: sizes}, np, false))
			}

			// A save read back, and an import of the same file.
			now := time.Now().UTC()
			m := modelfile.Meta{ID: "0b1f7c9e-7c53-4c1e-9a51-3e4a3f2f6d11", Sizes: sizes, Init: "scaled", CreatedAt: now, UpdatedAt: now}
			var file bytes.Buffer
			if err := modelfile.Encode(&file, m, net); err != nil {
				t.Fatal(err)
			}
			dir := newMemStore()
			if err := dir.Save(context.Background(), m, net); err != nil {
				t.Fatal(err)
			}
			got = allocated(func() {
				if _, _, err := dir.Load(context.Background(), m.ID); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "load", got, loadBytes(model.Arch{Sizes: sizes}, 0))
			r := bytes.NewReader(file.Bytes())
			got = allocated(func() {
				shape, err := modelfile.PeekImport(r, r.Size(), modelfile.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				imp, err := modelfile.Import(r, r.Size(), modelfile.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := imp.Network.Evaluate(test); err != nil {
					t.Fatal(err)
				}
				if got := importBytes(shape); got != importBytes(modelfile.ImportShape{Sizes: sizes}) {
					t.Fatalf("PeekImport: %+v", shape)
				}
			})
			check(t, "import", got, importBytes(modelfile.ImportShape{Sizes: sizes}))
		})
	}
}

// TestBudgetEstimatesLayers is TestBudgetEstimates for layers networks:
// the chapter 6 example network, one with a wide dense layer, one with
// many filters.
func TestBudgetEstimatesLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates hundreds of megabytes")
	}
	ds, err := loadMNIST()
	if err != nil {
		t.Fatal(err)
	}
	relu := deep.ReLU
	nets := [][]deep.Layer{
		{{Kind: deep.Conv, Filters: 20, Size: 5, Activation: relu}, {Kind: deep.Pool, Size: 2},
			{Kind: deep.Conv, Filters: 40, Size: 5, Activation: relu}, {Kind: deep.Pool, Size: 2},
			{Kind: deep.Dense, Size: 100, Activation: relu, Dropout: 0.5}, {Kind: deep.Softmax, Size: 10}},
		{{Kind: deep.Dense, Size: 3000, Activation: deep.Sigmoid}, {Kind: deep.Dense, Size: 10, Activation: deep.Sigmoid}},
		{{Kind: deep.Conv, Filters: 64, Size: 3, Activation: relu}, {Kind: deep.Pool, Size: 2}, {Kind: deep.Softmax, Size: 10}},
	}
	check := func(t *testing.T, what string, got, estimate int64) {
		t.Helper()
		t.Logf("%-9s allocates %11d bytes, reserves %11d (%.2f×)", what, got, estimate, float64(estimate)/float64(max(got, 1)))
		if got > estimate {
			t.Errorf("%s allocates %d bytes, more than the %d it reserves", what, got, estimate)
		}
		if estimate > 4*got+4<<20 {
			t.Errorf("%s reserves %d bytes for the %d it allocates: too loose to be useful", what, estimate, got)
		}
	}
	for _, layers := range nets {
		t.Run(model.String(layers), func(t *testing.T) {
			net, err := deep.New(layers, network.InitScaled, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			arch := model.ArchOf(net)
			st := &state{net: net}
			test := ds.Test.Slice(0, 2500)
			got := allocated(func() {
				if _, err := analyse(context.Background(), st, test.Slice(0, analysisBlock)); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "analysis", got, analysisBytes(arch))
			x := make([]float64, 784)
			got = allocated(func() {
				if _, err := net.FeedForward(x); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "run", got, runBytes(arch))
			for _, batch := range []int{10, 50_000} {
				p := TrainParams{Epochs: 1, MiniBatch: batch, LearningRate: 0.01, Cost: CostLogLikelihood}
				np := p.network(DefaultLimits().JobScratchBytes, nil)
				np.Validation = ds.Validation.Slice(0, 500)
				got = allocated(func() {
					err := model.Train(context.Background(), net, ds.Training.Slice(0, 200), test, np, model.TrainOptions{}, newRand(1),
						func(model.Epoch) error { return nil })
					if err != nil {
						t.Fatal(err)
					}
				})
				// The shuffle order is for 200 examples here, 50,000 in a job.
				check(t, fmt.Sprintf("job %d", batch), got+4*(mnist.TrainSize-200), jobBytes(arch, np, false))
			}
			now := time.Now().UTC()
			m := modelfile.Meta{ID: "0b1f7c9e-7c53-4c1e-9a51-3e4a3f2f6d11", Sizes: arch.Sizes, Layers: layers, Init: "scaled", CreatedAt: now, UpdatedAt: now}
			dir := newMemStore()
			if err := dir.Save(context.Background(), m, net); err != nil {
				t.Fatal(err)
			}
			got = allocated(func() {
				if _, _, err := dir.Load(context.Background(), m.ID); err != nil {
					t.Fatal(err)
				}
			})
			check(t, "load", got, loadBytes(arch, 0))
			var file bytes.Buffer
			if err := modelfile.Encode(&file, m, net); err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(file.Bytes())
			got = allocated(func() {
				shape, err := modelfile.PeekImport(r, r.Size(), modelfile.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				imp, err := modelfile.Import(r, r.Size(), modelfile.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := imp.Network.Evaluate(test); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(shape.Layers, layers) {
					t.Fatalf("PeekImport: %+v", shape)
				}
			})
			check(t, "import", got, importBytes(modelfile.ImportShape{Sizes: arch.Sizes, Layers: layers}))
		})
	}
}
