package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Many starts with tight budgets and constructors that honour their
// context but take a random while: whatever fx reports, once the pool's
// OnStart has returned (PoolStarted) and app.Stop has returned, every
// resource that opened is closed (at once, or when its late opener
// returns), exactly once; and a start the pool reports as successful
// serves.
func TestA16lTightStartBudgetsNeverLeaveResourcesOpen(t *testing.T) {
	iterations := 40
	if testing.Short() {
		iterations = 10
	}
	for it := 0; it < iterations; it++ {
		seed := uint64(it)
		h := a16lNew()
		// With budgets of a few milliseconds an opener that honours its
		// context may still return after the rollback gave up, and fx then
		// closes the store first: documented in RELIABILITY.md
		// ("open-without-app-resource, explained"). Not checked here.
		h.ignoreStore.Store(true)
		rng := rand.New(rand.NewPCG(seed, 16))
		delays := make([]time.Duration, 64)
		for i := range delays {
			delays[i] = time.Duration(rng.IntN(8000)) * time.Microsecond
		}
		var calls atomic.Int32
		h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
			d := delays[int(calls.Add(1))%len(delays)]
			select {
			case <-time.After(d):
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		var p *workerpool.Pool[a16lDeps]
		app := h.app(&p, []workerpool.Option{workerpool.Workers(8)})
		budget := time.Duration(2+rng.IntN(20)) * time.Millisecond
		ctx, cancel := a16lCtx(budget)
		startErr := app.Start(ctx)
		cancel()
		h.waitFor(t, fmt.Sprintf("iteration %d: PoolStarted", it), func([]a16lEntry) bool {
			return len(a16lEvents[workerpool.PoolStarted](h)) == 1
		})
		ps := a16lEvents[workerpool.PoolStarted](h)[0]
		if ps.Err == nil && startErr == nil {
			if err := p.Do(context.Background(), func(_ context.Context, d a16lDeps) error { h.checkTask(d); return nil }); err != nil {
				t.Errorf("iteration %d: started pool refused a task: %v", it, err)
			}
		}
		if ps.Err != nil && p.Serving() {
			t.Errorf("iteration %d: the pool reported a failed start but serves", it)
		}
		sctx, scancel := a16lCtx(a16lGuard)
		_ = app.Stop(sctx)
		scancel()
		h.waitFor(t, fmt.Sprintf("iteration %d (budget %v, start err %v, pool err %v): every resource closed", it, budget, startErr, ps.Err),
			func(es []a16lEntry) bool { return len(a16lOpenNow(es)) == 0 })
		h.checkLifecycle(t, true)
		if t.Failed() {
			t.Fatalf("iteration %d failed", it)
		}
	}
}

// A rebuild's close that fails reports its error in that generation's
// WorkerClosed event; the later stop, which closes only the next
// generation, returns nil.
func TestA16lRebuildCloseErrorReportedInItsEvent(t *testing.T) {
	h := a16lNew()
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "B" && w.Generation == 0 {
			return errA16lInjected
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Do(ctx, func(context.Context, a16lDeps) error { return fmt.Errorf("x: %w", resources.ErrBroken) })
	if w := a16lGenOf(t, ctx, p, h); w.Generation != 1 {
		t.Fatalf("generation %d after ErrBroken", w.Generation)
	}
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop: %v, want nil: the failed close was the rebuild's", err)
	}
	var found bool
	for _, e := range a16lEvents[workerpool.WorkerClosed](h) {
		if e.Worker.Generation == 0 {
			found = true
			if !errors.Is(e.Err, errA16lInjected) {
				t.Errorf("generation 0's WorkerClosed: %v, want the cleanup's error", e.Err)
			}
		} else if e.Err != nil {
			t.Errorf("generation %d's WorkerClosed: %v", e.Worker.Generation, e.Err)
		}
	}
	if !found {
		t.Error("no WorkerClosed of generation 0")
	}
	h.checkLifecycle(t, true)
}

// Tasks that call runtime.Goexit on workers being removed by Resize and
// while the pool stops, with LockOSThread: every generation that opened
// closes exactly once, and nothing is open when app.Stop returns.
func TestA16lGoexitOnRemovedWorkersDuringStop(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			h := a16lNew()
			opts := []workerpool.Option{workerpool.Workers(4)}
			if locked {
				opts = append(opts, workerpool.LockOSThread())
			}
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, opts)
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			gate := make(chan struct{})
			running := make(chan struct{}, 4)
			results := make(chan error, 4)
			for i := 0; i < 4; i++ {
				go func() {
					results <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
						running <- struct{}{}
						<-gate
						h.checkTask(d)
						runtime.Goexit()
						return nil
					})
				}()
			}
			for i := 0; i < 4; i++ {
				a16lAwait(t, running, "busy")
			}
			if err := p.Resize(2); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := a16lCtx(5 * time.Second)
			defer cancel()
			stopErr := make(chan error, 1)
			go func() { stopErr <- app.Stop(ctx) }()
			a16lPoll(t, "the pool to stop serving", func() bool { return !p.Serving() })
			close(gate)
			err := a16lAwait(t, stopErr, "app.Stop")
			if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
				t.Errorf("app.Stop returned (%v) with %v open\n%s", err, left, h.dump())
			}
			if err != nil {
				t.Errorf("stop: %v", err)
			}
			for i := 0; i < 4; i++ {
				if r := a16lAwait(t, results, "Goexit task"); !errors.Is(r, workerpool.ErrGoexit) {
					t.Errorf("Goexit task: %v", r)
				}
			}
			h.checkLifecycle(t, true)
		})
	}
}
