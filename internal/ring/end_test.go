package ring

import (
	"runtime"
	"sync"
	"testing"
)

// End's values come after every value queued, one a take, n in all.
func TestEndAfterValues(t *testing.T) {
	for _, size := range []int{0, 1, 4} {
		r := New[int](size, 2)
		queued := min(size, 3)
		for i := range queued {
			if !r.TryPush(i + 1) {
				t.Fatalf("size %d: TryPush %d refused", size, i+1)
			}
		}
		r.End(-1, 2)
		var got []int
		for v := 0; r.TryPop(&v); {
			got = append(got, v)
		}
		want := []int{}
		for i := range queued {
			want = append(want, i+1)
		}
		want = append(want, -1, -1)
		if len(got) != len(want) {
			t.Fatalf("size %d: took %v, want %v", size, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("size %d: took %v, want %v", size, got, want)
			}
		}
		r.End(-2, 1) // adds to what is left: nothing
		if v := 0; !r.TryPop(&v) || v != -2 || r.TryPop(&v) {
			t.Fatalf("size %d: a second End gave %d; want -2 once", size, v)
		}
	}
}

// End wakes consumers that wait on an empty queue: each of n gets one of
// its values, and a consumer beyond the n keeps waiting.
func TestEndWakesWaitingConsumers(t *testing.T) {
	const n = 16
	r := New[int](2, 0)
	got := make(chan int, n+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n + 1 {
		wg.Go(func() {
			var v int
			if r.Pop(&v, stop, nil) {
				got <- v
			}
		})
	}
	for r.Idle() < n+1 {
		runtime.Gosched()
	}
	r.End(7, n)
	for range n {
		if v := <-got; v != 7 {
			t.Fatalf("a woken consumer got %d, want 7", v)
		}
	}
	select {
	case v := <-got:
		t.Fatalf("a consumer beyond End's %d got %d", n, v)
	default:
	}
	close(stop)
	wg.Wait()
	if len(got) != 0 {
		t.Fatalf("the consumer beyond End's %d got %d after its Pop gave up", n, <-got)
	}
}

// A value queued before End is taken before End's values, even by a
// consumer whose take began before the value was queued: it found the
// queue empty, and End came before it looked for End's values. Before
// the fix, a worker pool's Drain took its pill so and left the last task
// queued, unrun.
func TestEndAfterRacingValue(t *testing.T) {
	const rounds = 20_000
	rings := make(chan *Ring[int])
	firsts := make(chan int)
	var wg sync.WaitGroup
	wg.Go(func() {
		for r := range rings {
			var v int
			for !r.TryPop(&v) {
			}
			firsts <- v
		}
	})
	defer wg.Wait()
	defer close(rings)
	for i := range rounds {
		for _, size := range []int{0, 1} {
			r := New[int](size, 0)
			rings <- r // the consumer takes from it as fast as it can
			if size == 0 {
				r.idle.Add(1) // a hand-off queue takes a value for a waiting consumer only
			}
			if !r.TryPush(1) {
				t.Fatalf("round %d, size %d: TryPush refused", i, size)
			}
			r.End(-1, 1)
			if v := <-firsts; v != 1 {
				t.Fatalf("round %d, size %d: took End's value %d before the value queued before End", i, size, v)
			}
		}
	}
}
