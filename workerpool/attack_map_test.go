package workerpool_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func atkSeq(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

func TestAttackMapNilArgs(t *testing.T) {
	p, _ := atkStart[W](t, "mapnil", workerpool.Workers(2))
	f := func(_ context.Context, _ W, i int) (int, error) { return i, nil }
	count := func(s iter.Seq2[int, error]) (n int, errs []error) {
		for _, err := range s {
			n++
			if err != nil {
				errs = append(errs, err)
			}
		}
		return
	}
	//lint:ignore SA1012 nil ctx on purpose
	n, errs := count(workerpool.Map(nil, p, atkSeq(3), f)) //nolint:staticcheck
	if n != 1 || len(errs) != 1 || !errors.Is(errs[0], workerpool.ErrNilContext) {
		t.Errorf("Map(nil ctx): %d yields, errs %v; want one ErrNilContext", n, errs)
	}
	n, errs = count(workerpool.Map[W, int, int](context.Background(), p, atkSeq(3), nil))
	if n != 1 || len(errs) != 1 || !errors.Is(errs[0], workerpool.ErrNilTask) {
		t.Errorf("Map(nil f): %d yields, errs %v; want one ErrNilTask", n, errs)
	}
	n, errs = count(workerpool.Map(context.Background(), p, atkSeq(3), f, nil))
	if n != 1 || len(errs) != 1 {
		t.Errorf("Map(nil option): %d yields, errs %v; want one error", n, errs)
	}
	// nil input sequence: doc does not say; must not panic or hang
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Map(nil seq) panicked: %v", r)
			}
		}()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Map(nil seq) panicked: %v", r)
				}
			}()
			n, errs = count(workerpool.Map(context.Background(), p, nil, f))
		}()
		atkWait(t, "Map(nil seq)", 5*time.Second, done)
		t.Logf("Map(nil seq): %d yields, errs %v", n, errs)
		if n > 1 {
			t.Errorf("Map(nil seq) yielded %d times", n)
		}
	}()
}

// Map on a nil pool: the doc is silent; a panic with a nil dereference is
// what a user gets.
func TestAttackMapNilPool(t *testing.T) {
	f := func(_ context.Context, _ W, i int) (int, error) { return i, nil }
	var n int
	var errs []error
	done := make(chan struct{})
	var perr any
	go func() {
		defer close(done)
		defer func() { perr = recover() }()
		for _, err := range workerpool.Map[W](context.Background(), nil, atkSeq(3), f) {
			n++
			errs = append(errs, err)
		}
	}()
	atkWait(t, "Map(nil pool)", 5*time.Second, done)
	if perr != nil {
		t.Errorf("Map(nil pool) panicked: %v (doc: bad input gets a clear error, never a panic)", perr)
	}
	t.Logf("Map(nil pool): %d yields %v", n, errs)
}

// ctx deadline while Map waits for a result: Map yields ctx's error and ends.
// Variant 1: f honours its ctx: the whole loop must end promptly.
// Variant 2: f ignores its ctx: the doc promises both "ctx ending while Map
// waits for a result yields that error and ends the loop" and "none of f's
// calls keeps running behind it", so at least the error must be yielded at
// the deadline (the loop may then wait for f).
func TestAttackMapCtxDeadlineWhileWaiting(t *testing.T) {
	p, _ := atkStart[W](t, "mapdl", workerpool.Workers(1))
	for _, honour := range []bool{true, false} {
		name := "honours ctx"
		if !honour {
			name = "ignores ctx"
		}
		t.Run(name, func(t *testing.T) {
			ctx, c := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer c()
			release := make(chan struct{})
			t0 := time.Now()
			var got []error
			var yieldedAt time.Duration
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, err := range workerpool.Map(ctx, p, atkSeq(5), func(tctx context.Context, _ W, i int) (int, error) {
					if honour {
						select {
						case <-release:
						case <-tctx.Done():
							return 0, tctx.Err()
						}
					} else {
						<-release
					}
					return i, nil
				}) {
					if err != nil && yieldedAt == 0 {
						yieldedAt = time.Since(t0)
					}
					got = append(got, err)
				}
			}()
			if honour {
				select {
				case <-done:
				case <-time.After(3 * time.Second):
					close(release)
					<-done
					t.Errorf("Map's loop did not end within 3s of a 200ms deadline (yields %v, first error after %v)", got, yieldedAt)
					return
				}
				close(release)
			} else {
				// f ignores ctx: Map yields the error at the deadline, then
				// waits for f (none of f's calls keeps running behind it).
				select {
				case <-done:
					t.Error("Map returned while one of its f calls was still running")
				case <-time.After(time.Second):
				}
				close(release)
				atkWait(t, "Map ends once f returns", 5*time.Second, done)
			}
			if len(got) == 0 || !errors.Is(got[len(got)-1], context.DeadlineExceeded) {
				t.Errorf("Map yields %v, want to end with DeadlineExceeded", got)
			}
			if yieldedAt > time.Second {
				t.Errorf("error yielded after %v", yieldedAt)
			}
		})
	}
}

// A Map inside a task on its own one-worker pool with a deadline must return.
func TestAttackMapNestedOnOneWorkerPool(t *testing.T) {
	p, _ := atkStart[W](t, "mapnest", workerpool.Workers(1), workerpool.QueueSize(2))
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context, _ W) error {
			mctx, c := context.WithTimeout(ctx, 300*time.Millisecond)
			defer c()
			var last error
			n := 0
			for _, err := range workerpool.Map(mctx, p, atkSeq(10), func(_ context.Context, _ W, i int) (int, error) { return i, nil }) {
				n++
				last = err
			}
			if last == nil {
				return errors.New("nested Map ended without error though it could never run")
			}
			return last
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("nested Map: %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nested Map on a one-worker pool deadlocked past its deadline")
	}
	// the pool still works and nothing of the nested Map runs
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// A panic in the loop body: when it propagates, no f call is running and
// none will start.
func TestAttackMapPanicInBodyLeavesNothingRunning(t *testing.T) {
	p, _ := atkStart[W](t, "mappanic", workerpool.Workers(2), workerpool.QueueSize(8))
	var running, started atomic.Int32
	f := func(ctx context.Context, _ W, i int) (int, error) {
		started.Add(1)
		running.Add(1)
		defer running.Add(-1)
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // slow, ignoring ctx
		}
		return i, nil
	}
	var atPanic int32
	func() {
		defer func() {
			r := recover()
			if r != "body" {
				t.Errorf("recovered %v", r)
			}
			atPanic = running.Load()
		}()
		for range workerpool.Map(context.Background(), p, atkSeq(100), f, workerpool.InFlight(6)) {
			panic("body")
		}
	}()
	if atPanic != 0 {
		t.Errorf("%d calls of f still running when the body's panic propagated", atPanic)
	}
	s1 := started.Load()
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if s2 := started.Load(); s2 != s1 {
		t.Errorf("f started %d more times after Map's loop ended by panic", s2-s1)
	}
	if s := p.Stats(); s.Queued != 0 || s.Busy != 0 {
		t.Errorf("after Map: Stats = %+v", s)
	}
}

// Results in order; errors in place; early break stops submission; InFlight bound honoured.
func TestAttackMapOrderAndInFlight(t *testing.T) {
	p, _ := atkStart[W](t, "maporder", workerpool.Workers(2), workerpool.QueueSize(16))
	var inflight, maxIn atomic.Int32
	errOdd := errors.New("odd")
	var outs []int
	idx := 0
	for v, err := range workerpool.Map(context.Background(), p, atkSeq(200), func(_ context.Context, _ W, i int) (int, error) {
		n := inflight.Add(1)
		for {
			m := maxIn.Load()
			if n <= m || maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		defer inflight.Add(-1)
		if i%7 == 3 {
			return 0, errOdd
		}
		return i * 2, nil
	}, workerpool.InFlight(3)) {
		if idx%7 == 3 {
			if !errors.Is(err, errOdd) {
				t.Errorf("idx %d: err %v", idx, err)
			}
		} else if err != nil || v != idx*2 {
			t.Errorf("idx %d: %d, %v", idx, v, err)
		}
		outs = append(outs, v)
		idx++
	}
	if idx != 200 {
		t.Errorf("%d results, want 200", idx)
	}
	if maxIn.Load() > 3 {
		t.Errorf("max in flight %d > InFlight(3)", maxIn.Load())
	}
	_ = slices.Max(outs)
	// early break
	var calls atomic.Int32
	for range workerpool.Map(context.Background(), p, atkSeq(1000), func(_ context.Context, _ W, i int) (int, error) {
		calls.Add(1)
		return i, nil
	}, workerpool.InFlight(4)) {
		break
	}
	if c := calls.Load(); c > 5 {
		t.Errorf("after break at first result, f ran %d times (InFlight 4)", c)
	}
}
