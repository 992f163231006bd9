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
