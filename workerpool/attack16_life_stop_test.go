package workerpool_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Cleanups that panic, Goexit or fail: the stop keeps going, closes every
// other resource once, and returns every error, naming each resource.
func TestA16lCleanupPanicGoexitErrorKeepGoing(t *testing.T) {
	h := a16lNew()
	errC1 := errors.New("a16l: C of worker 1 failed")
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		switch {
		case res == "C" && w.ID == 0:
			panic("a16l: C of worker 0 panics")
		case res == "B" && w.ID == 0:
			runtime.Goexit()
		case res == "C" && w.ID == 1:
			return errC1
		}
		return nil
	})
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(3), rec.Option()})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(ctx) }()
	err := a16lAwait(t, stopped, "app.Stop")
	if err == nil {
		t.Fatal("stop returned nil despite failing cleanups")
	}
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("stop error has no *PanicError: %v", err)
	}
	if !errors.Is(err, hooks.ErrGoexit) {
		t.Errorf("stop error does not wrap hooks.ErrGoexit: %v", err)
	}
	if !errors.Is(err, errC1) {
		t.Errorf("stop error does not wrap the failing cleanup's error: %v", err)
	}
	var ce *hooks.CleanupError
	if !errors.As(err, &ce) {
		t.Errorf("stop error has no *hooks.CleanupError: %v", err)
	}
	h.checkLifecycle(t, true)
	if n := a16lCount(h.snapshot(), "close", "", -1); n != 9 {
		t.Errorf("%d cleanups ran, want 9", n)
	}
	rec.Verify(t)
	for _, e := range a16lEvents[workerpool.WorkerClosed](h) {
		if e.Worker.ID == 2 && e.Err != nil {
			t.Errorf("worker 2's WorkerClosed has an error: %v", e.Err)
		}
		if e.Worker.ID != 2 && e.Err == nil {
			t.Errorf("worker %d's WorkerClosed has no error", e.Worker.ID)
		}
	}
	if sp := a16lEvents[workerpool.PoolStopped](h); len(sp) != 1 || sp[0].Err == nil {
		t.Errorf("PoolStopped: %+v, want one with the errors", sp)
	}
}

// A cleanup that ignores its context: the stop returns by its deadline with
// an error naming the worker and the cleanup; the other workers have closed
// by then; once the cleanup returns, the resources behind it close, once.
// Every cleanup's context ends before the stop's deadline.
func TestA16lHungCleanupStopReturnsThenRestCloses(t *testing.T) {
	h := a16lNew()
	h.ignoreStore.Store(true) // fx stops the store once the pool's OnStop gave up
	release := make(chan struct{})
	var mu sync.Mutex
	deadlines := map[string]time.Time{}
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		d, ok := ctx.Deadline()
		mu.Lock()
		if ok {
			deadlines[res+string(rune('0'+w.ID))] = d
		} else {
			deadlines[res+string(rune('0'+w.ID))] = time.Time{}
		}
		mu.Unlock()
		if res == "C" && w.ID == 0 {
			<-release // ignores ctx
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(2 * time.Second)
	defer cancel()
	stopDeadline, _ := ctx.Deadline()
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(ctx) }()
	err := a16lAwait(t, stopped, "app.Stop with a hung cleanup")
	if err == nil {
		t.Errorf("stop returned nil while a cleanup was stuck")
	} else if !strings.Contains(err.Error(), "C") {
		t.Errorf("stop error does not name the stuck cleanup C: %v", err)
	}
	es := h.snapshot()
	for _, k := range a16lOpenNow(es) {
		if k.id != 0 {
			t.Errorf("stop returned with %v of a free worker still open", k)
		}
	}
	if a16lCount(es, "close", "A", 0)+a16lCount(es, "close", "B", 0) != 0 {
		t.Errorf("B or A of worker 0 closed while C, which depends on B, was still closing\n%s", h.dump())
	}
	close(release)
	h.waitFor(t, "worker 0's B and A closing after C returned", func(es []a16lEntry) bool {
		return a16lCount(es, "close", "A", 0) == 1
	})
	h.waitFor(t, "balance", func(es []a16lEntry) bool { return len(a16lOpenNow(es)) == 0 })
	h.checkLifecycle(t, true)
	mu.Lock()
	defer mu.Unlock()
	for k, d := range deadlines {
		if d.IsZero() {
			t.Errorf("cleanup %s got a context without a deadline from a stop with one", k)
		} else if d.After(stopDeadline) {
			t.Errorf("cleanup %s got a context ending at %v, after the stop's deadline %v", k, d, stopDeadline)
		}
	}
}

// Three stops at once (two Pool.Stop and the app's): each waits for the one
// under way and returns its result; every cleanup runs once.
func TestA16lConcurrentStopsShareTheResult(t *testing.T) {
	h := a16lNew()
	boom := errors.New("a16l: boom")
	release := make(chan struct{})
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" && w.ID == 0 {
			<-release
			return boom
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- p.Stop(ctx, workerpool.Drain) }()
	h.waitFor(t, "C of worker 0 closing", a16lHas("close", "C", 0))
	second := make(chan error, 1)
	go func() { second <- p.Stop(ctx, workerpool.Cancel) }()
	appStop := make(chan error, 1)
	go func() { appStop <- app.Stop(ctx) }()
	select {
	case err := <-second:
		t.Errorf("a second Stop returned (%v) while the first was still closing", err)
	case err := <-appStop:
		t.Errorf("app.Stop returned (%v) while the pool's stop was still closing", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	for name, ch := range map[string]chan error{"first Stop": first, "second Stop": second, "app.Stop": appStop} {
		if err := a16lAwait(t, ch, name); !errors.Is(err, boom) {
			t.Errorf("%s returned %v, want the cleanup's error", name, err)
		}
	}
	h.checkLifecycle(t, true)
	if n := a16lCount(h.snapshot(), "close", "", -1); n != 6 {
		t.Errorf("%d cleanups ran, want 6", n)
	}
}

// Tasks that panic or Goexit when the stop cancels them: their workers may
// rebuild, but when app.Stop returns nothing is open, and the submitters get
// *PanicError and ErrGoexit.
func TestA16lTaskPanicAndGoexitDuringStop(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(2), workerpool.OnStop(policy)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			running := make(chan struct{}, 2)
			results := make(chan error, 2)
			for i := 0; i < 2; i++ {
				go func() {
					results <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
						running <- struct{}{}
						<-ctx.Done()
						if !errors.Is(context.Cause(ctx), workerpool.ErrClosed) {
							h.violate("task ctx cause %v, want ErrClosed", context.Cause(ctx))
						}
						if i == 0 {
							panic("a16l: panicking at stop")
						}
						runtime.Goexit()
						return nil
					})
				}()
			}
			a16lAwait(t, running, "task 0 running")
			a16lAwait(t, running, "task 1 running")
			ctx, cancel := a16lCtx(3 * time.Second)
			defer cancel()
			stopErr := make(chan error, 1)
			go func() { stopErr <- app.Stop(ctx) }()
			err := a16lAwait(t, stopErr, "app.Stop")
			if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
				t.Errorf("app.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
			}
			var sawPanic, sawGoexit bool
			for i := 0; i < 2; i++ {
				r := a16lAwait(t, results, "Do result")
				var pe *workerpool.PanicError
				switch {
				case errors.As(r, &pe):
					sawPanic = true
				case errors.Is(r, workerpool.ErrGoexit):
					sawGoexit = true
				default:
					t.Errorf("Do returned %v", r)
				}
			}
			if !sawPanic || !sawGoexit {
				t.Errorf("panic seen %v, Goexit seen %v", sawPanic, sawGoexit)
			}
			if err != nil {
				t.Errorf("app.Stop: %v", err)
			}
			h.checkLifecycle(t, true)
		})
	}
}

// A stopped pool does not start again, and opens nothing.
func TestA16lSecondStartAfterStopOpensNothing(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n := len(h.snapshot())
	err := app.Start(ctx)
	if !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("second start: %v, want ErrClosed", err)
	}
	if a16lCount(h.snapshot()[n:], "try", "", -1) != 0 {
		t.Errorf("second start opened resources")
	}
	if err := p.Do(ctx, func(context.Context, a16lDeps) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do after second start: %v", err)
	}
	_ = app.Stop(ctx)
	h.checkLifecycle(t, true)
}

// A cleanup that ignores its context past the stop's deadline; when it
// returns, the cleanups still waiting behind the stuck one (B, then A) run,
// once each, with the stop's context, ended: what CloseTimeout's docs now
// say (this test first asked for a live context, which the docs seemed to
// promise, and hooks.Stack.Close did not give).
func TestA16lCleanupsBehindAStuckOneRunWithTheStopsContext(t *testing.T) {
	h := a16lNew()
	h.ignoreStore.Store(true)
	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string]error{}
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if w.ID != 0 {
			return nil
		}
		if res == "C" {
			<-release // ignores ctx
			return nil
		}
		mu.Lock()
		got[res] = ctx.Err()
		mu.Unlock()
		// a flush that honours its context
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
			return nil
		}
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.CloseTimeout(time.Minute)})
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(time.Second)
	defer cancel()
	if err := app.Stop(ctx); err == nil {
		t.Fatal("stop returned nil with a stuck cleanup")
	}
	close(release)
	h.waitFor(t, "B and A closing after C returned", func(es []a16lEntry) bool { return len(a16lOpenNow(es)) == 0 })
	h.checkLifecycle(t, true)
	time.Sleep(50 * time.Millisecond) // only to let late events in for the log below
	for _, e := range a16lEvents[workerpool.ResourceClosed](h) {
		t.Logf("event: ResourceClosed %s err=%v", e.Resource, e.Err)
	}
	for _, e := range a16lEvents[workerpool.WorkerClosed](h) {
		t.Logf("event: WorkerClosed %v err=%v", e.Worker, e.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, res := range []string{"B", "A"} {
		if err, ok := got[res]; !ok {
			t.Errorf("cleanup %s never ran", res)
		} else if err == nil {
			t.Errorf("cleanup %s, run once the stuck C returned after the stop gave up, got a live context: the docs say the stop's, ended", res)
		}
	}
}
