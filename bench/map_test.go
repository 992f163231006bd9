package bench

import (
	"context"
	"sync"
	"testing"

	"github.com/fxpool/fxpool/workerpool"
)

// BenchmarkMap: an ordered parallel map of b.N values, at most 2W in
// flight; one op is one element. The floor is the hand-written ordered
// fan-out: W goroutines read indexed inputs from a channel and write each
// result into its slot of a window of 2W one-element channels, which the
// consumer reads in order.
func BenchmarkMap(b *testing.B) {
	runWidthsTasks(b, []taskKind{trivialTask, microTask}, []impl[func(*testing.B, int, taskKind)]{
		{"floor", mapFloor},
		{"fxpool", mapFxpool},
	})
}

func mapWork(steps, x int) uint64 {
	Work(steps)
	return uint64(x)
}

func mapFloor(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	window := 2 * w
	type job struct{ i, x int }
	in := make(chan job, window)
	slots := make([]chan uint64, window)
	for i := range slots {
		slots[i] = make(chan uint64, 1)
	}
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for j := range in {
				slots[j.i%window] <- mapWork(steps, j.x)
			}
		})
	}
	var sum uint64
	b.ResetTimer()
	next := 0
	for i := range b.N {
		if i-next == window {
			sum += <-slots[next%window]
			next++
		}
		in <- job{i, i}
	}
	for ; next < b.N; next++ {
		sum += <-slots[next%window]
	}
	b.StopTimer()
	close(in)
	wg.Wait()
	Sink(sum)
}

func mapFxpool(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	seq := func(yield func(int) bool) {
		for i := range b.N {
			if !yield(i) {
				return
			}
		}
	}
	f := func(_ context.Context, _ *Conn, x int) (uint64, error) { return mapWork(steps, x), nil }
	var sum uint64
	b.ResetTimer()
	for v, err := range workerpool.Map(context.Background(), p, seq, f, workerpool.InFlight(2*w)) {
		if err != nil {
			b.Fatal(err)
		}
		sum += v
	}
	Sink(sum)
}
