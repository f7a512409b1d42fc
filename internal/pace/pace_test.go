package pace

import (
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	open, closed := make(chan struct{}), make(chan struct{})
	close(closed)
	long := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name    string
		start   time.Time // zero: never started
		done    chan struct{}
		want    bool
		yielded bool // the time it last yielded moved
	}{
		{"not started", time.Time{}, open, true, false},
		{"started within Every", time.Now().Add(time.Hour), open, true, false},
		{"due", long, open, true, true},
		{"done", long, closed, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Pacer
			if !tc.start.IsZero() {
				p.Start(tc.start)
			}
			if got := p.Pause(tc.done); got != tc.want {
				t.Fatalf("Pause = %v, want %v", got, tc.want)
			}
			if moved := !p.last.Equal(tc.start); moved != tc.yielded {
				t.Errorf("yielded = %v, want %v (last %v, start %v)", moved, tc.yielded, p.last, tc.start)
			}
		})
	}
}

func TestTickAllocatesNothing(t *testing.T) {
	var p Pacer
	p.Start(time.Now().Add(-time.Hour))
	if n := testing.AllocsPerRun(100, p.Tick); n != 0 {
		t.Errorf("Tick allocates %v times", n)
	}
}
