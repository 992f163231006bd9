package workerpool_test

// Round 8: Map's input sequence misbehaves — it panics, or calls
// runtime.Goexit, after some values. Map must not crash the process or leave
// a task of its own running: the panic reaches the goroutine that ranges
// (where a recover can catch it), as for any iterator, and no f keeps running
// behind the loop.

import (
	"context"
	"iter"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack8MapInputPanics(t *testing.T) {
	p, _ := atkStart[W](t, "a8mapin", workerpool.Workers(3), workerpool.QueueSize(4))
	for _, after := range []int{0, 1, 5, 40} {
		var running, ran atomic.Int64
		in := iter.Seq[int](func(yield func(int) bool) {
			for i := range 100 {
				if i == after {
					panic("a8: input broke")
				}
				if !yield(i) {
					return
				}
			}
		})
		var recovered any
		results := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { recovered = recover() }()
			for v, err := range workerpool.Map(context.Background(), p, in, func(ctx context.Context, _ W, i int) (int, error) {
				running.Add(1)
				defer running.Add(-1)
				time.Sleep(time.Millisecond)
				ran.Add(1)
				return i * 2, nil
			}, workerpool.InFlight(4)) {
				if err != nil {
					t.Errorf("after %d: unexpected error %v", after, err)
					continue
				}
				if v != results*2 {
					t.Errorf("after %d: result %d = %d, out of order", after, results, v)
				}
				results++
			}
		}()
		atkWait(t, "Map over a panicking input", 10*time.Second, done)
		if recovered == nil {
			t.Errorf("after %d: the input's panic did not reach the ranging goroutine (%d results)", after, results)
		} else if s, _ := recovered.(string); s != "a8: input broke" {
			t.Logf("after %d: recovered %v", after, recovered)
		}
		if n := running.Load(); n != 0 {
			t.Errorf("after %d: %d calls of f still running after the loop ended", after, n)
		}
		if results > after {
			t.Errorf("after %d: %d results for %d inputs", after, results, after)
		}
		// the pool still works
		if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
			t.Fatalf("after %d: Do on the pool = %v", after, err)
		}
	}
}

func TestAttack8MapInputGoexit(t *testing.T) {
	p, _ := atkStart[W](t, "a8mapgx", workerpool.Workers(2), workerpool.QueueSize(4))
	var running atomic.Int64
	in := iter.Seq[int](func(yield func(int) bool) {
		for i := range 10 {
			if i == 3 {
				runtime.Goexit()
			}
			if !yield(i) {
				return
			}
		}
	})
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(done)
		for range workerpool.Map(context.Background(), p, in, func(ctx context.Context, _ W, i int) (int, error) {
			running.Add(1)
			defer running.Add(-1)
			time.Sleep(time.Millisecond)
			return i, nil
		}) {
		}
		close(ended) // not reached if Goexit reached this goroutine
	}()
	atkWait(t, "Map over a Goexit-ing input", 10*time.Second, done)
	select {
	case <-ended:
		t.Log("the loop ended normally after the input's Goexit")
	default:
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d calls of f still running after the loop ended", n)
	}
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatalf("Do on the pool = %v", err)
	}
}
