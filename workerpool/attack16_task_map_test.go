package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Results in input order, errors and panics yielded in place and the loop
// goes on; the task's context carries ctx's values.
func TestA16tMapOrderErrorsPanics(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(3), workerpool.QueueSize(4))
	ctx := context.WithValue(context.Background(), a16tKey{}, "map")
	const n = 100
	i := 0
	for out, err := range workerpool.Map(ctx, p, slices.Values(make([]int, n)), func(tctx context.Context, _ resources.Worker, _ int) (string, error) {
		return fmt.Sprint(tctx.Value(a16tKey{})), nil
	}) {
		if err != nil || out != "map" {
			t.Fatalf("item %d: %q %v", i, out, err)
		}
		i++
	}
	if i != n {
		t.Fatalf("yielded %d, want %d", i, n)
	}
	in := func(yield func(int) bool) {
		for k := range n {
			if !yield(k) {
				return
			}
		}
	}
	idx := 0
	for out, err := range workerpool.Map(context.Background(), p, iter.Seq[int](in), func(_ context.Context, _ resources.Worker, k int) (int, error) {
		switch k % 7 {
		case 3:
			return 0, fmt.Errorf("a16t err %d", k)
		case 5:
			panic(fmt.Sprintf("a16t panic %d", k))
		}
		return k * 2, nil
	}, workerpool.InFlight(5)) {
		switch idx % 7 {
		case 3:
			if err == nil || err.Error() != fmt.Sprintf("a16t err %d", idx) {
				t.Fatalf("item %d: err %v", idx, err)
			}
		case 5:
			var pe *workerpool.PanicError
			if !errors.As(err, &pe) || pe.Value != fmt.Sprintf("a16t panic %d", idx) {
				t.Fatalf("item %d: err %v, want its panic", idx, err)
			}
		default:
			if err != nil || out != idx*2 {
				t.Fatalf("item %d: %d %v", idx, out, err)
			}
		}
		idx++
	}
	if idx != n {
		t.Fatalf("yielded %d, want %d", idx, n)
	}
}

// InFlight bounds the tasks submitted and not yet consumed: a task never
// starts while InFlight results are unconsumed ahead of it.
func TestA16tMapInFlightBound(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(4), workerpool.QueueSize(16))
	for _, opt := range []int{1, 2, 3, 0, -5} {
		bound := max(opt, 1) // "n below 1 means 1"
		var started, consumed, worst atomic.Int64
		for _, err := range workerpool.Map(context.Background(), p, slices.Values(make([]int, 200)), func(context.Context, resources.Worker, int) (int, error) {
			s := started.Add(1)
			if d := s - consumed.Load(); d > worst.Load() {
				worst.Store(d)
			}
			return 0, nil
		}, workerpool.InFlight(opt)) {
			if err != nil {
				t.Fatal(err)
			}
			consumed.Add(1)
		}
		if w := worst.Load(); w > int64(bound) {
			t.Errorf("InFlight(%d): %d tasks started and not yet consumed at once", opt, w)
		}
		if started.Load() != 200 {
			t.Errorf("InFlight(%d): %d started", bound, started.Load())
		}
	}
}

// Breaking out early: nothing of the Map keeps running behind the loop, and
// no queued task of it starts later, even in a drain.
func TestA16tMapBreakLeavesNothingBehind(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(16))
	var running, started atomic.Int64
	k := 0
	for _, err := range workerpool.Map(context.Background(), p, slices.Values(make([]int, 50)), func(ctx context.Context, _ resources.Worker, _ int) (int, error) {
		started.Add(1)
		running.Add(1)
		defer running.Add(-1)
		if started.Load() == 1 {
			return 0, nil
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}, workerpool.InFlight(10)) {
		if err != nil {
			t.Fatalf("first result: %v", err)
		}
		k++
		break
	}
	if r := running.Load(); r != 0 {
		t.Fatalf("%d of f's calls still running after the loop ended", r)
	}
	s := started.Load()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if s2 := started.Load(); s2 != s {
		t.Errorf("%d Map tasks started after the loop ended", s2-s)
	}

	// A panic in the loop body: same.
}

// A panic in the loop's body leaves none of Map's tasks running.
func TestA16tMapBodyPanicLeavesNothingRunning(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(16))
	var running, started atomic.Int64
	func() {
		defer func() {
			if r := recover(); r != "a16t body" {
				t.Errorf("recovered %v", r)
			}
		}()
		in := make([]int, 50)
		for i := range in {
			in[i] = i
		}
		// The first value's task returns at once, whichever worker starts
		// first (this test hung when the second value's task started
		// first, and the first waited for the loop to end).
		for range workerpool.Map(context.Background(), p, slices.Values(in), func(ctx context.Context, _ resources.Worker, x int) (int, error) {
			started.Add(1)
			if x == 0 {
				return 0, nil
			}
			running.Add(1)
			defer running.Add(-1)
			<-ctx.Done()
			return 0, nil
		}, workerpool.InFlight(6)) {
			panic("a16t body")
		}
	}()
	if r := running.Load(); r != 0 {
		t.Fatalf("%d f calls still running after the body's panic", r)
	}
	s := started.Load()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if started.Load() != s {
		t.Errorf("Map tasks started after the body panicked")
	}
}

// Map inside a task of its own one-worker pool (the CHANGELOG: it "hung"):
// when the task's context ends, Map ends, and its queued task never runs.
func TestA16tMapInsideTaskOfOneWorkerPool(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4))
	cause := errors.New("a16t: outer gone")
	ctx, cancel := context.WithCancelCause(context.Background())
	var innerRan atomic.Int32
	mapErr := make(chan error, 1)
	mapping := make(chan struct{})
	doErr := make(chan error, 1)
	go func() {
		doErr <- p.Do(ctx, func(tctx context.Context, _ resources.Worker) error {
			close(mapping)
			var last error
			for _, err := range workerpool.Map(tctx, p, slices.Values([]int{1, 2, 3}), func(context.Context, resources.Worker, int) (int, error) {
				innerRan.Add(1)
				return 0, nil
			}) {
				last = err
				if err != nil {
					break
				}
			}
			mapErr <- last
			return last
		})
	}()
	a16tRecv(t, mapping, "outer task")
	a16tEventually(t, "Map's tasks to be queued", func() bool { return p.Stats().Queued > 0 })
	cancel(cause)
	err := a16tRecv(t, mapErr, "Map inside a task of its own pool to end when the task's ctx ends")
	if err == nil {
		t.Errorf("Map ended without an error")
	}
	if !errors.Is(err, cause) && !errors.Is(err, context.Canceled) {
		t.Errorf("Map's error = %v, want the context's", err)
	}
	a16tRecv(t, doErr, "Do")
	a16tBarrier(t, p)
	if n := innerRan.Load(); n != 0 {
		t.Errorf("%d of Map's queued tasks ran after it ended", n)
	}
}

// Nil arguments yield one error each, never a panic.
func TestA16tMapNilArguments(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1))
	f := func(context.Context, resources.Worker, int) (int, error) { return 0, nil }
	count := func(seq iter.Seq2[int, error]) (n int, errs []error) {
		for _, err := range seq {
			n++
			errs = append(errs, err)
		}
		return
	}
	//lint:ignore SA1012 on purpose
	n, errs := count(workerpool.Map(nil, p, slices.Values([]int{1}), f)) //nolint:staticcheck
	if n != 1 || !errors.Is(errs[0], workerpool.ErrNilContext) {
		t.Errorf("nil ctx: %d %v", n, errs)
	}
	n, errs = count(workerpool.Map(context.Background(), p, slices.Values([]int{1}), (func(context.Context, resources.Worker, int) (int, error))(nil)))
	if n != 1 || !errors.Is(errs[0], workerpool.ErrNilTask) {
		t.Errorf("nil f: %d %v", n, errs)
	}
	n, errs = count(workerpool.Map(context.Background(), p, nil, f))
	if n != 1 || errs[0] == nil {
		t.Errorf("nil seq: %d %v", n, errs)
	}
	n, errs = count(workerpool.Map[resources.Worker, int, int](context.Background(), nil, slices.Values([]int{1}), f))
	if n != 1 || errs[0] == nil {
		t.Errorf("nil pool: %d %v", n, errs)
	}
	n, errs = count(workerpool.Map(context.Background(), p, slices.Values([]int{1}), f, nil))
	if n != 1 || errs[0] == nil {
		t.Errorf("nil option: %d %v", n, errs)
	}
	// After the stop: one ErrClosed, and the loop ends.
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	n, errs = count(workerpool.Map(context.Background(), p, slices.Values([]int{1, 2, 3}), f))
	if n != 1 || !errors.Is(errs[0], workerpool.ErrClosed) {
		t.Errorf("after stop: %d %v, want one ErrClosed", n, errs)
	}
}

// InFlight far above the pool's capacity (a hand-off pool): Map still
// finishes, in order.
func TestA16tMapInFlightAboveCapacity(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(0))
	i := 0
	for out, err := range workerpool.Map(context.Background(), p, slices.Values(make([]int, 300)), func(context.Context, resources.Worker, int) (int, error) {
		return 1, nil
	}, workerpool.InFlight(64)) {
		if err != nil || out != 1 {
			t.Fatalf("item %d: %d %v", i, out, err)
		}
		i++
	}
	if i != 300 {
		t.Fatalf("%d items", i)
	}
}

// A Cancel stop in the middle of a Map: every item yielded without an
// error ran; the loop ends with ErrClosed; nothing of f runs after it.
func TestA16tMapCancelStopMidLoop(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(4))
	var ranIdx sync.Map
	var running atomic.Int32
	in := func(yield func(int) bool) {
		for k := range 1000 {
			if !yield(k) {
				return
			}
		}
	}
	stopped := make(chan error, 1)
	pos := 0
	sawClosed := false
	for out, err := range workerpool.Map(context.Background(), p, iter.Seq[int](in), func(ctx context.Context, _ resources.Worker, k int) (int, error) {
		running.Add(1)
		defer running.Add(-1)
		ranIdx.Store(k, true)
		return k, nil
	}, workerpool.InFlight(8)) {
		if pos == 20 {
			go func() { stopped <- a16tStop(t, p, workerpool.Cancel) }()
			a16tEventually(t, "refusal", func() bool { return !p.Serving() })
		}
		if err == nil {
			if out != pos {
				t.Fatalf("position %d yielded %d", pos, out)
			}
			if _, ok := ranIdx.Load(pos); !ok {
				t.Fatalf("position %d yielded a value but f never ran for it", pos)
			}
		} else {
			if !errors.Is(err, workerpool.ErrClosed) {
				t.Fatalf("position %d: %v", pos, err)
			}
			sawClosed = true
		}
		pos++
	}
	if !sawClosed {
		t.Error("the loop ended without ErrClosed")
	}
	if pos >= 1000 {
		t.Error("the loop went through every item after the stop")
	}
	if r := running.Load(); r != 0 {
		t.Errorf("%d f running after the loop", r)
	}
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
}
