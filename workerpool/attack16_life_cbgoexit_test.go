package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// runtime.Goexit (t.FailNow, testify's require: what a test's own event
// hook or error handler calls when an assertion fails) in a user callback
// that runs on a worker's goroutine: whatever the pool does with that
// worker, "every resource whose open succeeded is closed exactly once"
// (README, Guarantees) must still hold — nothing abandoned open, no
// (worker, generation) opened twice — and the stop must not hang.
func a16lGoexitCallback(t *testing.T, phase string, opts []workerpool.Option, armed *atomic.Bool, trigger func(context.Context, *workerpool.Pool[a16lDeps])) {
	t.Helper()
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, append([]workerpool.Option{workerpool.Workers(1)}, opts...))
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if phase == "start" {
		armed.Store(true)
	}
	startErr := make(chan error, 1)
	go func() { startErr <- app.Start(ctx) }()
	serr := a16lAwait(t, startErr, "app.Start")
	if serr != nil {
		t.Logf("start: %v", serr)
	} else {
		if phase != "start" {
			armed.Store(true)
			trigger(ctx, p)
		}
		for i := 0; i < 3; i++ {
			done := make(chan error, 1)
			go func() {
				done <- p.Do(ctx, func(_ context.Context, d a16lDeps) error { h.checkTask(d); return nil })
			}()
			if err := a16lAwait(t, done, fmt.Sprintf("task %d after the Goexit", i)); err != nil {
				t.Errorf("task %d after the Goexit: %v", i, err)
			}
		}
	}
	sctx, scancel := a16lCtx(10 * time.Second)
	defer scancel()
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(sctx) }()
	if err := a16lAwait(t, stopped, "app.Stop"); err != nil {
		t.Logf("stop: %v", err)
	}
	h.checkLifecycle(t, true)
	for _, e := range a16lEvents[workerpool.WorkerRebuilt](h) {
		t.Logf("WorkerRebuilt %v %s: %v", e.Worker, e.Reason, e.Cause)
	}
	// Tidy up for the package's goleak check: a pool fx never stopped is
	// stopped here (after the checks above).
	_ = p.Stop(sctx, workerpool.Cancel)
}

func a16lRebuildTrigger(ctx context.Context, p *workerpool.Pool[a16lDeps]) {
	_ = p.Do(ctx, func(context.Context, a16lDeps) error { panic("a16l: rebuild") })
}

func TestA16lGoexitInEventsCallbackAbandonsNothing(t *testing.T) {
	kinds := []struct {
		name  string
		match func(workerpool.Event) bool
	}{
		{"ResourceOpened", func(e workerpool.Event) bool { _, ok := e.(workerpool.ResourceOpened); return ok }},
		{"WorkerOpened", func(e workerpool.Event) bool { _, ok := e.(workerpool.WorkerOpened); return ok }},
		{"ResourceClosed", func(e workerpool.Event) bool { _, ok := e.(workerpool.ResourceClosed); return ok }},
		{"WorkerClosed", func(e workerpool.Event) bool { _, ok := e.(workerpool.WorkerClosed); return ok }},
		{"WorkerRebuilt", func(e workerpool.Event) bool { _, ok := e.(workerpool.WorkerRebuilt); return ok }},
		{"PoolStarted", func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolStarted); return ok }},
	}
	for _, phase := range []string{"start", "rebuild"} {
		for _, k := range kinds {
			if phase == "start" && (k.name == "ResourceClosed" || k.name == "WorkerClosed" || k.name == "WorkerRebuilt") {
				continue
			}
			if phase == "rebuild" && k.name == "PoolStarted" {
				continue
			}
			t.Run(phase+"/"+k.name, func(t *testing.T) {
				var armed atomic.Bool
				a16lGoexitCallback(t, phase, []workerpool.Option{workerpool.Events(func(e workerpool.Event) {
					if k.match(e) && armed.Swap(false) {
						runtime.Goexit()
					}
				})}, &armed, a16lRebuildTrigger)
			})
		}
	}
}

// The same for GoReport's report and the ErrorHandler.
func TestA16lGoexitInReportAndErrorHandlerAbandonsNothing(t *testing.T) {
	t.Run("report", func(t *testing.T) {
		var armed atomic.Bool
		a16lGoexitCallback(t, "serving", nil, &armed, func(ctx context.Context, p *workerpool.Pool[a16lDeps]) {
			reported := make(chan struct{})
			_ = p.GoReport(ctx, func(context.Context, a16lDeps) error { return nil }, func(workerpool.Outcome, error) {
				defer close(reported)
				if armed.Swap(false) {
					runtime.Goexit()
				}
			})
			<-reported
		})
	})
	t.Run("errorhandler", func(t *testing.T) {
		var armed atomic.Bool
		a16lGoexitCallback(t, "serving", []workerpool.Option{workerpool.ErrorHandler(func(error) {
			if armed.Swap(false) {
				runtime.Goexit()
			}
		})}, &armed, func(ctx context.Context, p *workerpool.Pool[a16lDeps]) {
			_ = p.Go(ctx, func(context.Context, a16lDeps) error { return errors.New("a16l: fails") })
		})
	})
}

// Goexit in callbacks that run during the stop: Events at ResourceClosed,
// WorkerClosed or PoolStopped, and OnDropped (which runs "on a worker's or
// the stopping goroutine"). When app.Stop has returned, every resource is
// closed, once.
func TestA16lGoexitInStopCallbacksAbandonsNothing(t *testing.T) {
	type cfg struct {
		name string
		opt  func(armed *atomic.Bool) workerpool.Option
	}
	events := func(match func(workerpool.Event) bool) func(*atomic.Bool) workerpool.Option {
		return func(armed *atomic.Bool) workerpool.Option {
			return workerpool.Events(func(e workerpool.Event) {
				if match(e) && armed.Swap(false) {
					runtime.Goexit()
				}
			})
		}
	}
	cases := []cfg{
		{"Events/ResourceClosed", events(func(e workerpool.Event) bool { _, ok := e.(workerpool.ResourceClosed); return ok })},
		{"Events/WorkerClosed", events(func(e workerpool.Event) bool { _, ok := e.(workerpool.WorkerClosed); return ok })},
		{"Events/PoolStopped", events(func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolStopped); return ok })},
		{"OnDropped", func(armed *atomic.Bool) workerpool.Option {
			return workerpool.OnDropped(func(context.Context, func(context.Context, a16lDeps) error) {
				if armed.Swap(false) {
					runtime.Goexit()
				}
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := a16lNew()
			var armed atomic.Bool
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(2), workerpool.QueueSize(4), workerpool.OnStop(workerpool.Cancel), c.opt(&armed)})
			ctx, cancel := a16lCtx(a16lGuard)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			// two running tasks (until their context ends) and queued ones to drop
			running := make(chan struct{}, 2)
			for i := 0; i < 2; i++ {
				_ = p.Go(ctx, func(ctx context.Context, d a16lDeps) error { running <- struct{}{}; <-ctx.Done(); return nil })
			}
			a16lAwait(t, running, "busy")
			a16lAwait(t, running, "busy")
			for i := 0; i < 3; i++ {
				_ = p.Go(ctx, func(context.Context, a16lDeps) error { return nil })
			}
			armed.Store(true)
			sctx, scancel := a16lCtx(5 * time.Second)
			defer scancel()
			stopped := make(chan error, 1)
			go func() { stopped <- app.Stop(sctx) }()
			err := a16lAwait(t, stopped, "app.Stop")
			t.Logf("stop: %v", err)
			if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
				t.Errorf("app.Stop returned with %v still open", left)
			}
			h.checkLifecycle(t, true)
			_ = p.Stop(sctx, workerpool.Cancel)
		})
	}
}
