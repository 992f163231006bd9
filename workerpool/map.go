package workerpool

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"sync/atomic"
)

// MapOption configures [Map].
type MapOption interface {
	applyMap(*mapConfig)
	String() string
}

type mapConfig struct{ inFlight int }

// InFlight bounds how many tasks of one [Map] are submitted and not yet
// consumed. The default is twice the pool's workers; n below 1 means 1.
func InFlight(n int) MapOption { return inFlightOption(n) }

type inFlightOption int

func (o inFlightOption) applyMap(c *mapConfig) { c.inFlight = max(1, int(o)) }
func (o inFlightOption) String() string        { return "workerpool.InFlight(" + strconv.Itoa(int(o)) + ")" }

// Map runs f on the pool for each value of in and yields the results in
// the order of in, with at most a bounded number of tasks in flight (see
// [InFlight]): a parallel map that never holds the whole input or output.
//
// Nothing runs until the result is ranged over. Each task's context carries
// ctx's values and ends when ctx does, when the pool's stop says so, or
// when the loop ends. A failed task yields its error and the loop goes on;
// a failure to submit (the pool stopped, ctx ended) yields that error and
// ends the loop, and so does ctx ending while Map waits for a result. A nil
// ctx, pool, sequence, f or option yields one error ([ErrNilContext],
// [ErrNilTask] for f).
//
// When the loop ends — early, on an error, or by a panic in its body — Map
// has cancelled the tasks still queued (they will not run) and waited for
// every task of its own that had begun: none of f's calls keeps running
// behind it. That wait comes first: an f that ignores its context holds
// the end of the loop, after its error was yielded, until it returns.
func Map[R, In, Out any](ctx context.Context, p *Pool[R], in iter.Seq[In], f func(context.Context, R, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	var zero Out
	fail := func(err error) iter.Seq2[Out, error] {
		return func(yield func(Out, error) bool) { yield(zero, err) }
	}
	switch {
	case ctx == nil:
		return fail(ErrNilContext)
	case p == nil:
		return fail(fmt.Errorf("workerpool: Map: nil pool"))
	case in == nil:
		return fail(fmt.Errorf("workerpool: Map: nil input sequence"))
	case f == nil:
		return fail(ErrNilTask)
	}
	cfg := mapConfig{inFlight: 2 * p.Capacity().MaxWorkers}
	for _, o := range opts {
		if o == nil {
			return fail(fmt.Errorf("workerpool: Map: nil option"))
		}
		o.applyMap(&cfg)
	}
	return func(yield func(Out, error) bool) {
		ctx, cancel := context.WithCancelCause(ctx)
		var window []*mapTask[Out] // a FIFO: oldest first
		// Whatever ends the loop, nothing of f's outlives it: tasks not
		// begun never will, those begun are waited for.
		defer func() {
			cancel(context.Canceled)
			for _, t := range window {
				if t.began.Load() {
					<-t.fut.done
				}
			}
		}()
		// next yields the oldest result, and reports whether to go on.
		next := func() bool {
			t := window[0]
			select {
			case <-t.fut.done:
			case <-ctx.Done():
				yield(zero, context.Cause(ctx))
				return false
			}
			window = window[1:]
			return yield(t.fut.val, t.fut.err)
		}
		for x := range in {
			if len(window) == cfg.inFlight && !next() {
				return
			}
			if err := context.Cause(ctx); err != nil {
				yield(zero, err)
				return
			}
			t := &mapTask[Out]{}
			fut, err := Submit(ctx, p, func(ctx context.Context, r R) (Out, error) {
				t.began.Store(true) // before the look at ctx: see the deferred drain
				if err := context.Cause(ctx); err != nil {
					return zero, err
				}
				return f(ctx, r, x)
			})
			if err != nil {
				yield(zero, err)
				return
			}
			t.fut = fut
			window = append(window, t)
		}
		for len(window) > 0 {
			if !next() {
				return
			}
		}
	}
}

// mapTask is one task of a Map in flight.
type mapTask[Out any] struct {
	fut   *Future[Out]
	began atomic.Bool
}
