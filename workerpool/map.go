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
		// The tasks' context: the loop's, and also cancelled by the pool's
		// stop (the workers track its cancel), so that it is made once per
		// Map, not once per task.
		tctx, tcancel := context.WithCancelCause(ctx)
		m := &mapRun[R, In, Out]{f: f, cancel: tcancel, ready: make(chan struct{}, cfg.inFlight)}
		window := make([]*mapTask[R, In, Out], cfg.inFlight) // a ring: oldest at head
		head, n := 0, 0
		// Whatever ends the loop, nothing of f's outlives it: tasks not
		// begun never will, those begun are waited for.
		defer func() {
			cancel(context.Canceled)
			for i := range n {
				if t := window[(head+i)%len(window)]; t.began.Load() {
					for !t.done.Load() {
						<-m.ready
					}
				}
			}
		}()
		// next yields the oldest result, and reports whether to go on.
		next := func() bool {
			t := window[head]
			for !t.done.Load() {
				select {
				case <-m.ready:
				case <-ctx.Done():
					yield(zero, context.Cause(ctx))
					return false
				}
			}
			window[head] = nil
			head, n = (head+1)%len(window), n-1
			return yield(t.out, t.err)
		}
		for x := range in {
			if n == len(window) && !next() {
				return
			}
			if err := context.Cause(ctx); err != nil {
				yield(zero, err)
				return
			}
			t := &mapTask[R, In, Out]{m: m, x: x}
			if err := p.enqueue(ctx, task[R]{res: t, ctx: tctx, mode: ctxShared}); err != nil {
				yield(zero, err)
				return
			}
			window[(head+n)%len(window)] = t
			n++
		}
		for n > 0 {
			if !next() {
				return
			}
		}
	}
}

// mapRun is what the tasks of one Map share.
type mapRun[R, In, Out any] struct {
	f      func(context.Context, R, In) (Out, error)
	cancel context.CancelCauseFunc // the tasks' context's
	// ready gets a token each time a task is done, unless it is full: a
	// waiter who finds it empty is woken by the next task done.
	ready chan struct{}
}

// mapTask is one task of a Map, its input and its result: its only
// allocation.
type mapTask[R, In, Out any] struct {
	m     *mapRun[R, In, Out]
	x     In
	out   Out
	err   error
	began atomic.Bool
	state atomic.Uint32 // pending, settling, settled: as a Future's
	done  atomic.Bool
}

func (t *mapTask[R, In, Out]) run(ctx context.Context, r R) error {
	t.began.Store(true) // before the look at ctx: see the deferred drain
	if err := context.Cause(ctx); err != nil {
		return notRun{err} // the worker reports it, as not run
	}
	v, err := t.m.f(ctx, r, t.x)
	t.settle(v, err)
	return err
}

func (t *mapTask[R, In, Out]) finish(_ Outcome, err error) { t.settle(*new(Out), err) }

func (t *mapTask[R, In, Out]) cancelCause() context.CancelCauseFunc { return t.m.cancel }

// settle records the result once: a task dropped and then run by
// OnDropped does not change what Map yields.
func (t *mapTask[R, In, Out]) settle(v Out, err error) {
	if !t.state.CompareAndSwap(pending, settling) {
		return
	}
	t.out, t.err = v, err
	t.done.Store(true)
	select {
	case t.m.ready <- struct{}{}:
	default:
	}
}
