package dirstore

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkEpochSave measures what a training job's save after every epoch
// costs, without and with its snapshot: "save" is the model's atomic save
// (write, fsync, rename, fsync the directory); "save+snapshot" adds what
// the service does after it under the same lock: Snapshot (a hard link),
// Snapshots (to prune) and one DeleteSnapshot, as in the steady state
// where each new snapshot drops an old one. It reports the model file's
// size, and the bytes the network's snapshots hold on disk after the run
// with the default policy (the last 5 epochs and the best: distinct files
// once the model has moved on).
//
//	go test ./pkg/dirstore -run XXX -bench EpochSave -benchtime 50x
func BenchmarkEpochSave(b *testing.B) {
	const kept = 6 // SNAPSHOTS_KEPT 5, and the best
	for _, sizes := range [][]int{{784, 30, 10}, {784, 100, 10}, {784, 1000, 10}, {784, 4000, 10}} {
		for _, snap := range []bool{false, true} {
			name := fmt.Sprintf("%v/save", sizes)
			if snap {
				name += "+snapshot"
			}
			b.Run(name, func(b *testing.B) {
				s := openStore(b, b.TempDir())
				m, _ := fixture(b)
				m.Sizes, m.History, m.EpochsTrained = sizes, nil, 0
				n := newNet(b, sizes, 1)
				ctx := b.Context()
				var fileSize int64
				var saving, snapping time.Duration
				b.ResetTimer()
				for i := range b.N {
					m.EpochsTrained = i + 1
					t0 := time.Now()
					if err := s.Save(ctx, m, n); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					saving += t1.Sub(t0)
					if !snap {
						continue
					}
					if err := s.Snapshot(ctx, m.ID, m.EpochsTrained); err != nil {
						b.Fatal(err)
					}
					epochs, err := s.Snapshots(ctx, m.ID)
					if err != nil {
						b.Fatal(err)
					}
					if len(epochs) > kept {
						if err := s.DeleteSnapshot(ctx, m.ID, epochs[0]); err != nil {
							b.Fatal(err)
						}
					}
					snapping += time.Since(t1)
				}
				b.StopTimer()
				b.ReportMetric(float64(saving.Microseconds())/float64(b.N)/1000, "save-ms/op")
				if snap {
					b.ReportMetric(float64(snapping.Microseconds())/float64(b.N)/1000, "snapshot-ms/op")
				}
				fi, err := os.Stat(filepath.Join(s.Dir(), m.ID+".npz"))
				if err != nil {
					b.Fatal(err)
				}
				fileSize = fi.Size()
				b.ReportMetric(float64(fileSize), "file-bytes")
				if snap {
					b.ReportMetric(float64(diskBytes(b, filepath.Join(s.Dir(), "snapshots"), filepath.Join(s.Dir(), m.ID+".npz"))), "snapshot-disk-bytes")
				}
			})
		}
	}
}

// diskBytes sums the sizes of the regular files under dir that are not the
// file model (a hard link to it is counted once, with the model).
func diskBytes(b *testing.B, dir, model string) int64 {
	mi, err := os.Stat(model)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if !os.SameFile(fi, mi) {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
