package workerpool

import (
	"context"
	"iter"
	"strconv"
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
// Nothing runs until the result is ranged over. Each task receives a
// context that ends when ctx does, when the pool stops, or when the
// consumer stops early. A failed task yields its error and the loop goes
// on; a failure to submit (the pool stopped, ctx ended) yields that error
// and ends the loop. When the loop ends, early or not, Map has waited for
// every task it submitted: nothing keeps running behind it.
func Map[R, In, Out any](ctx context.Context, p *Pool[R], in iter.Seq[In], f func(context.Context, R, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	cfg := mapConfig{inFlight: 2 * p.cfg.workers}
	for _, o := range opts {
		o.applyMap(&cfg)
	}
	return func(yield func(Out, error) bool) {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		// Tasks also end when the pool stops.
		defer context.AfterFunc(p.tasks, func() { cancel(context.Cause(p.tasks)) })()

		var (
			window = make([]*Future[Out], 0, cfg.inFlight) // a FIFO: oldest first
			zero   Out
		)
		// drain waits for whatever is still in flight, so that nothing
		// outlives the loop.
		drain := func() {
			cancel(context.Canceled)
			for _, fut := range window {
				<-fut.done
			}
		}
		// next yields the oldest result, and reports whether to go on.
		next := func() bool {
			fut := window[0]
			window = window[1:]
			<-fut.done
			return yield(fut.val, fut.err)
		}
		for x := range in {
			if len(window) == cfg.inFlight && !next() {
				drain()
				return
			}
			if err := context.Cause(ctx); err != nil {
				drain()
				yield(zero, err)
				return
			}
			fut, err := Submit(ctx, p, func(_ context.Context, r R) (Out, error) {
				if err := context.Cause(ctx); err != nil {
					return zero, err
				}
				return f(ctx, r, x)
			})
			if err != nil {
				drain()
				yield(zero, err)
				return
			}
			window = append(window, fut)
		}
		for len(window) > 0 {
			if !next() {
				drain()
				return
			}
		}
	}
}
