package workerpool_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// The stop's split, checked by lower bounds only (so a slow machine cannot
// fail it): running tasks' contexts end no earlier than two fifths of the
// budget under Drain and DropQueued; every cleanup's context ends no earlier
// than nine tenths of it and no later than the stop's deadline.
func TestA16lStopBudgetSplitLowerBounds(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			var mu sync.Mutex
			var cleanupDeadlines []time.Time
			var missing int
			h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
				d, ok := ctx.Deadline()
				mu.Lock()
				if ok {
					cleanupDeadlines = append(cleanupDeadlines, d)
				} else {
					missing++
				}
				mu.Unlock()
				return nil
			})
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			running := make(chan struct{}, 1)
			cancelledAt := make(chan time.Time, 1)
			go func() {
				_ = p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
					running <- struct{}{}
					<-ctx.Done()
					cancelledAt <- time.Now()
					h.checkTask(d)
					return nil
				})
			}()
			a16lAwait(t, running, "task running")
			const budget = 1500 * time.Millisecond
			t0 := time.Now()
			ctx, cancel := context.WithDeadline(context.Background(), t0.Add(budget))
			defer cancel()
			D, _ := ctx.Deadline()
			if err := p.Stop(ctx, policy); err != nil {
				t.Errorf("stop: %v", err)
			}
			at := a16lAwait(t, cancelledAt, "the task's context ending")
			if min := t0.Add(budget * 2 / 5); at.Before(min) {
				t.Errorf("running task's context ended %v after the stop began; want no earlier than two fifths (%v)", at.Sub(t0), budget*2/5)
			}
			mu.Lock()
			defer mu.Unlock()
			if missing != 0 {
				t.Errorf("%d cleanups without a deadline", missing)
			}
			if len(cleanupDeadlines) != 6 {
				t.Errorf("%d cleanups, want 6", len(cleanupDeadlines))
			}
			for _, d := range cleanupDeadlines {
				if min := t0.Add(budget * 9 / 10).Add(-time.Millisecond); d.Before(min) {
					t.Errorf("cleanup deadline %v after t0, want at least nine tenths (%v)", d.Sub(t0), budget*9/10)
				}
				if d.After(D) {
					t.Errorf("cleanup deadline after the stop's deadline")
				}
			}
			_ = app.Stop(sctx)
			h.checkLifecycle(t, true)
		})
	}
}

// The context of a constructor of the first workers ends when the start
// returns, whether it succeeded or not.
func TestA16lConstructorContextEndsWithTheStart(t *testing.T) {
	h := a16lNew()
	var mu sync.Mutex
	var ctxs []context.Context
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		mu.Lock()
		ctxs = append(ctxs, ctx)
		mu.Unlock()
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, c := range ctxs {
		select {
		case <-c.Done():
		default:
			t.Errorf("constructor context %d still live after the start returned", i)
		}
	}
	mu.Unlock()
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.checkLifecycle(t, true)
}

// A task that ignores its context past the stop's deadline: the stop
// returns naming the worker; its resources are not closed under the task;
// when the task returns, its worker closes them, once, and its submitter
// gets the task's result.
func TestA16lStopGivesUpOnHungTaskResourcesOutliveIt(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			h.ignoreStore.Store(true) // fx closes the store after the pool gave up
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(2), workerpool.OnStop(policy)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			running := make(chan int, 1)
			res := make(chan error, 1)
			go func() {
				res <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
					running <- d.W.ID
					<-release // ignores ctx
					h.checkTask(d)
					return errors.New("a16l: the task's own result")
				})
			}()
			id := a16lAwait(t, running, "task running")
			ctx, cancel := a16lCtx(1 * time.Second)
			defer cancel()
			err := app.Stop(ctx)
			if err == nil {
				t.Errorf("stop returned nil while a task ignored its context")
			}
			es := h.snapshot()
			for _, k := range a16lOpenNow(es) {
				if k.id != id {
					t.Errorf("free worker's %v still open after the stop", k)
				}
			}
			if a16lCount(es, "close", "", id) != 0 {
				t.Errorf("the busy worker's resources were closed under its task\n%s", h.dump())
			}
			close(release)
			if r := a16lAwait(t, res, "Do"); r == nil || !strings.Contains(r.Error(), "own result") {
				t.Logf("Do of the hung task returned %v", r)
			}
			h.waitFor(t, "the busy worker closing on its own", func(es []a16lEntry) bool {
				return len(a16lOpenNow(es)) == 0
			})
			h.checkLifecycle(t, true)
		})
	}
}

// A stop with a context that has already ended: every worker still closes
// its resources, exactly once; if the stop says nil, it has closed them.
func TestA16lStopWithAnEndedContext(t *testing.T) {
	for _, kind := range []string{"deadline", "cancelled"} {
		t.Run(kind, func(t *testing.T) {
			h := a16lNew()
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(3)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			var ctx context.Context
			var cancel context.CancelFunc
			if kind == "deadline" {
				ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			} else {
				ctx, cancel = context.WithCancel(context.Background())
				cancel()
			}
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Stop(ctx, workerpool.Drain) }()
			err := a16lAwait(t, done, "Pool.Stop with an ended context")
			if err == nil {
				if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
					t.Errorf("Stop returned nil with %v still open", left)
				}
			}
			if p.Serving() {
				t.Errorf("serving after Stop")
			}
			h.waitFor(t, "every resource closed", func(es []a16lEntry) bool { return len(a16lOpenNow(es)) == 0 })
			_ = app.Stop(sctx)
			h.checkLifecycle(t, true)
			// The stop gave up at once: the workers close after it, and
			// leave Stats a moment after their last cleanup returned.
			idle := func(st workerpool.Stats) bool {
				return st.Workers == 0 && st.Opening == 0 && st.Closing == 0 && st.Busy == 0
			}
			for end := time.Now().Add(a16lGuard); !idle(p.Stats()) && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			if st := p.Stats(); !idle(st) {
				t.Errorf("Stats after the stop: %+v", st)
			}
		})
	}
}

// Resize while the pool starts, and while it stops, is refused and opens
// nothing that outlives the stop.
func TestA16lResizeRefusedWhileStartingAndStopping(t *testing.T) {
	h := a16lNew()
	openGate := make(chan struct{})
	closeGate := make(chan struct{})
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" && w.ID == 0 && w.Generation == 0 {
			<-openGate
		}
		return nil
	})
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" && w.ID == 0 {
			<-closeGate
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- app.Start(ctx) }()
	h.waitFor(t, "worker 0 opening C", a16lHas("try", "C", 0))
	if err := p.Resize(4); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Resize while starting: %v, want ErrNotStarted", err)
	}
	close(openGate)
	if err := a16lAwait(t, started, "start"); err != nil {
		t.Fatal(err)
	}
	if c := p.Capacity(); c.Workers != 2 {
		t.Errorf("after a refused Resize, Capacity().Workers = %d", c.Workers)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(ctx) }()
	h.waitFor(t, "worker 0 closing C", a16lHas("close", "C", 0))
	if err := p.Resize(5); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize while stopping: %v, want ErrClosed", err)
	}
	close(closeGate)
	if err := a16lAwait(t, stopped, "stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	es := h.snapshot()
	for _, e := range es {
		if e.op == "try" && e.w.ID >= 2 {
			t.Errorf("a refused Resize opened worker %d", e.w.ID)
			break
		}
	}
	h.checkLifecycle(t, true)
}

// Shrink while the workers to remove are busy with tasks that wait for
// their context, then stop at once: the removed workers' tasks end with the
// stop, and when app.Stop returns every resource is closed, once.
func TestA16lResizeShrinkRacesStop(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(4), workerpool.OnStop(policy)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			running := make(chan struct{}, 4)
			results := make(chan error, 4)
			for i := 0; i < 4; i++ {
				go func() {
					results <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
						running <- struct{}{}
						<-ctx.Done()
						h.checkTask(d)
						return nil
					})
				}()
			}
			for i := 0; i < 4; i++ {
				a16lAwait(t, running, "busy")
			}
			if err := p.Resize(1); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := a16lCtx(3 * time.Second)
			defer cancel()
			err := app.Stop(ctx)
			if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
				t.Errorf("app.Stop returned (%v) with %v open\n%s", err, left, h.dump())
			}
			if err != nil {
				t.Errorf("stop: %v", err)
			}
			for i := 0; i < 4; i++ {
				if r := a16lAwait(t, results, "task"); r != nil {
					t.Errorf("task: %v", r)
				}
			}
			h.checkLifecycle(t, true)
		})
	}
}

// A feeder's last tasks, handed in while the stop stops the feeders, run
// on open resources; cleanups that submit to their own pool during the stop
// get ErrClosed instead of hanging.
func TestA16lFeederLastTasksAndCleanupSubmissions(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	var cleanupErrs sync.Map
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" {
			err := p.Do(ctx, func(context.Context, a16lDeps) error { return nil })
			cleanupErrs.Store(w.ID, err)
		}
		return nil
	})
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	var reported sync.WaitGroup
	var feedErr error
	if err := p.AddFeeder(func(fctx context.Context) error {
		for i := 0; i < 5; i++ {
			reported.Add(1)
			if err := p.GoReport(context.Background(), func(_ context.Context, d a16lDeps) error {
				h.checkTask(d)
				ran.Add(1)
				return nil
			}, func(o workerpool.Outcome, err error) {
				if o != workerpool.Succeeded {
					h.violate("feeder's last task: %v %v", o, err)
				}
				reported.Done()
			}); err != nil {
				reported.Done()
				feedErr = err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if feedErr != nil {
		t.Errorf("feeder's last GoReport refused: %v", feedErr)
	}
	reported.Wait()
	if n := ran.Load(); n != 5 {
		t.Errorf("%d of the feeder's 5 last tasks ran", n)
	}
	n := 0
	cleanupErrs.Range(func(k, v any) bool {
		n++
		if err, _ := v.(error); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("cleanup of worker %v submitting to its own stopping pool: %v, want ErrClosed", k, v)
		}
		return true
	})
	if n != 2 {
		t.Errorf("%d cleanups submitted", n)
	}
	h.checkLifecycle(t, true)
}

// Events callbacks that panic at every event: the pool starts, rebuilds and
// stops as usual, every resource closes once.
func TestA16lPanickingEventsCallback(t *testing.T) {
	h := a16lNew()
	var calls atomic.Int32
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2), workerpool.Events(func(workerpool.Event) {
		calls.Add(1)
		panic("a16l: events callback")
	})})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start with a panicking Events callback: %v", err)
	}
	_ = p.Do(ctx, func(context.Context, a16lDeps) error { panic("a16l: task") })
	for i := 0; i < 4; i++ {
		_ = a16lGenOf(t, ctx, p, h)
	}
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop with a panicking Events callback: %v", err)
	}
	if calls.Load() == 0 {
		t.Error("callback never called")
	}
	// the harness's own Events (given first) still saw every event
	if len(a16lEvents[workerpool.PoolStopped](h)) != 1 {
		t.Error("no PoolStopped event for the first callback")
	}
	h.checkLifecycle(t, true)
}

// "Each worker closes its resources as soon as it is free": while one
// worker's task runs on until two fifths of the budget, the idle workers
// have closed before that task's context ends.
func TestA16lIdleWorkersCloseWhileAnotherDrains(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(3)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			running := make(chan int, 1)
			res := make(chan error, 1)
			go func() {
				res <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
					running <- d.W.ID
					<-ctx.Done()
					h.add(a16lEntry{op: "task", res: "cancelled", w: d.W})
					return nil
				})
			}()
			busy := a16lAwait(t, running, "task running")
			ctx, cancel := a16lCtx(3 * time.Second)
			defer cancel()
			if err := p.Stop(ctx, policy); err != nil {
				t.Errorf("stop: %v", err)
			}
			a16lAwait(t, res, "task")
			var cancelledSeq int
			lastIdleClose := 0
			for _, e := range h.snapshot() {
				if e.op == "task" && e.res == "cancelled" {
					cancelledSeq = e.seq
				}
				if e.op == "close" && e.w.ID != busy {
					lastIdleClose = e.seq
				}
			}
			if lastIdleClose == 0 || cancelledSeq == 0 {
				t.Fatalf("log:\n%s", h.dump())
			}
			if lastIdleClose > cancelledSeq {
				t.Errorf("idle workers closed only after the busy worker's task was cancelled at two fifths\n%s", h.dump())
			}
			_ = app.Stop(sctx)
			h.checkLifecycle(t, true)
		})
	}
}
