package service

import (
	"context"
	"testing"
)

// BenchmarkFCEpochService is one epoch of [784, 30, 10] (batch 10, η 3.0)
// as a job of the service.
func BenchmarkFCEpochService(b *testing.B) {
	f := newFixture(b, 1, DefaultLimits(), nil, nil)
	arch, err := f.svc.Limits().NewArchitecture([]int{784, 30, 10})
	if err != nil {
		b.Fatal(err)
	}
	seed := uint64(1)
	info, err := f.svc.Create(context.Background(), CreateParams{Arch: arch, Init: InitNormal, Seed: &seed})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		j, err := f.svc.Train(context.Background(), info.ID, TrainParams{Epochs: 1, MiniBatch: 10, LearningRate: 3.0, Cost: CostQuadratic, Seed: &seed})
		if err != nil {
			b.Fatal(err)
		}
		f.events.waitEnd(b, j.ID)
	}
}
