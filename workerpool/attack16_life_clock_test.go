package workerpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// With a test clock that never moves, the stop's budget is still real
// time: WithClock "replaces the clock that times worker age and restart
// backoff", not the stop's split. Under Drain the running task's context
// ends at two fifths and the stop completes cleanly.
func TestA16lTestClockDoesNotFreezeTheStop(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			clock := fxpooltest.NewClock()
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(2), clock.Option()})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			running := make(chan struct{})
			res := make(chan error, 1)
			go func() {
				res <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
					close(running)
					<-ctx.Done()
					return context.Cause(ctx)
				})
			}()
			<-running
			ctx, cancel := a16lCtx(2 * time.Second)
			defer cancel()
			if err := p.Stop(ctx, policy); err != nil {
				t.Errorf("stop with a frozen test clock: %v", err)
			}
			if r := a16lAwait(t, res, "the running task"); !errors.Is(r, workerpool.ErrClosed) {
				t.Errorf("running task: %v, want its context ended with ErrClosed", r)
			}
			_ = app.Stop(sctx)
			h.checkLifecycle(t, true)
		})
	}
}

// A worker whose reopen keeps failing waits in its restart backoff (on a
// test clock that never moves) when the stop comes: the stop ends the
// retries, reports the queued task as not run, and returns with nothing
// open.
func TestA16lStopEndsABackoffOnAFrozenClock(t *testing.T) {
	h := a16lNew()
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "B" && w.Generation >= 1 {
			return errA16lInjected
		}
		return nil
	})
	clock := fxpooltest.NewClock()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), clock.Option(), workerpool.QueueSize(4)})
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Do(sctx, func(context.Context, a16lDeps) error { panic("a16l") })
	h.waitFor(t, "the first failed reopen", a16lHas("openfail", "B", 0))
	if err := clock.WaitTimers(sctx, 1); err != nil {
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	go func() { queued <- p.Do(sctx, func(context.Context, a16lDeps) error { return nil }) }()
	a16lPoll(t, "the task queued", func() bool { return p.Stats().Queued == 1 })
	ctx, cancel := a16lCtx(2 * time.Second)
	defer cancel()
	err := app.Stop(ctx)
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("stop returned (%v) with %v open", err, left)
	}
	if r := a16lAwait(t, queued, "the queued task"); !errors.Is(r, workerpool.ErrClosed) {
		t.Errorf("queued task behind a failing reopen: %v, want ErrClosed", r)
	}
	h.checkLifecycle(t, true)
}

// A Pool.Stop before the start closes the pool; the app's start then fails
// with ErrClosed and opens nothing.
func TestA16lStopBeforeStart(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := p.Stop(ctx, workerpool.Drain); err != nil {
		t.Errorf("Stop before start: %v", err)
	}
	if err := app.Start(ctx); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("start after a Stop: %v, want ErrClosed", err)
	}
	if n := a16lCount(h.snapshot(), "try", "", -1); n != 0 {
		t.Errorf("%d constructors ran", n)
	}
	if err := p.Do(ctx, func(context.Context, a16lDeps) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do: %v, want ErrClosed", err)
	}
	_ = app.Stop(ctx)
}

// StopGuard begins the pool's stop at half the budget while a hook before
// it still runs; that hook then returns, fx reaches the pool's OnStop,
// which waits for the guard's stop; the store, stopped after, closes after
// every per-worker resource.
func TestA16lStopGuardThenFxReachesThePool(t *testing.T) {
	h := a16lNew()
	reachedX := make(chan struct{})
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" && w.ID == 0 {
			select {
			case <-reachedX:
			case <-ctx.Done():
			}
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)},
		fxpool.Module,
		fx.Invoke(func(lc fx.Lifecycle, _ *workerpool.Pool[a16lDeps]) {
			lc.Append(fx.StopHook(func() { close(reachedX) }))
		}),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
			lc.Append(fx.StopHook(func(ctx context.Context) error {
				// overruns half the budget: until the guard stops the pool
				for p.Serving() {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
				return nil
			}))
		}),
		workerpool.StopGuard(),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(4 * time.Second)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if !a16lStoreMarked(h.snapshot()) {
		t.Errorf("the store never closed")
	}
	h.checkLifecycle(t, true)
	if n := len(a16lEvents[workerpool.PoolStopped](h)); n != 1 {
		t.Errorf("%d PoolStopped events, want 1", n)
	}
}
