package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/zap/zapcore"
)

func a16lGenOf(t *testing.T, ctx context.Context, p *workerpool.Pool[a16lDeps], h *a16lH) resources.Worker {
	t.Helper()
	var w resources.Worker
	if err := p.Do(ctx, func(_ context.Context, d a16lDeps) error {
		h.checkTask(d)
		w = d.W
		return nil
	}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	return w
}

// A panic, a Goexit and an ErrBroken task each make the worker close its
// generation in reverse order and open the next before its next task.
func TestA16lRebuildAfterPanicGoexitBroken(t *testing.T) {
	h := a16lNew()
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), rec.Option()})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if g := a16lGenOf(t, ctx, p, h).Generation; g != 0 {
		t.Fatalf("first generation %d", g)
	}
	err := p.Do(ctx, func(context.Context, a16lDeps) error { panic("a16l: boom") })
	var pe *workerpool.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("panicking task: %v, want *PanicError", err)
	}
	if g := a16lGenOf(t, ctx, p, h).Generation; g != 1 {
		t.Errorf("after a panic, generation %d, want 1", g)
	}
	err = p.Do(ctx, func(context.Context, a16lDeps) error { runtime.Goexit(); return nil })
	if !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Goexit task: %v, want ErrGoexit", err)
	}
	if g := a16lGenOf(t, ctx, p, h).Generation; g != 2 {
		t.Errorf("after a Goexit, generation %d, want 2", g)
	}
	broken := fmt.Errorf("conn reset: %w", resources.ErrBroken)
	err = p.Do(ctx, func(context.Context, a16lDeps) error { return broken })
	if !errors.Is(err, resources.ErrBroken) {
		t.Errorf("broken task: %v", err)
	}
	if g := a16lGenOf(t, ctx, p, h).Generation; g != 3 {
		t.Errorf("after ErrBroken, generation %d, want 3", g)
	}
	if st := p.Stats(); st.Restarts != 3 {
		t.Errorf("Stats.Restarts = %d, want 3", st.Restarts)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.checkLifecycle(t, true)
	rec.Verify(t)
	rb := a16lEvents[workerpool.WorkerRebuilt](h)
	if len(rb) != 3 {
		t.Fatalf("WorkerRebuilt events: %d, want 3: %+v", len(rb), rb)
	}
	for i, e := range rb {
		if e.Reason != "restart" || e.Cause == nil {
			t.Errorf("WorkerRebuilt %d: %+v, want reason restart with a cause", i, e)
		}
	}
	if !errors.Is(rb[1].Cause, workerpool.ErrGoexit) {
		t.Errorf("rebuild after Goexit has cause %v", rb[1].Cause)
	}
	if !errors.Is(rb[2].Cause, resources.ErrBroken) {
		t.Errorf("rebuild after ErrBroken has cause %v", rb[2].Cause)
	}
	if n := a16lCount(h.snapshot(), "close", "C", 0); n != 4 {
		t.Errorf("C closed %d times, want 4 (generations 0-3)", n)
	}
}

// A rebuild whose first attempt fails halfway (B of generation 1) closes
// what that attempt opened, retries and opens generation 1, not 2.
func TestA16lFailedReopenRetriesSameGeneration(t *testing.T) {
	h := a16lNew()
	var failed atomic.Bool
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "B" && w.Generation == 1 && !failed.Swap(true) {
			return errA16lInjected
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Do(ctx, func(context.Context, a16lDeps) error { panic("a16l") })
	w := a16lGenOf(t, ctx, p, h)
	if w.Generation != 1 {
		t.Errorf("after one failed attempt, the task got generation %d, want 1", w.Generation)
	}
	if !failed.Load() {
		t.Errorf("the injected failure never happened")
	}
	es := h.snapshot()
	if n := a16lCount(es, "openfail", "B", 0); n != 1 {
		t.Errorf("B failed %d times", n)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.checkLifecycle(t, true)
	var failedOpen bool
	for _, e := range a16lEvents[workerpool.WorkerOpened](h) {
		if e.Err != nil {
			failedOpen = true
			if !errors.Is(e.Err, errA16lInjected) {
				t.Errorf("failed WorkerOpened: %v", e.Err)
			}
		}
	}
	if !failedOpen {
		t.Errorf("no WorkerOpened event with the failed attempt's error")
	}
}

// MaxTasksPerWorker's recycle races the stop: the next generation's open is
// still running when the stop begins. Under Drain, the queued task runs;
// when app.Stop returns, nothing is open.
func TestA16lRecycleOpenRacesStop(t *testing.T) {
	h := a16lNew()
	release := make(chan struct{})
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "A" && w.Generation == 1 {
			<-release // ignores ctx
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.MaxTasksPerWorker(1)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a16lGenOf(t, ctx, p, h)
	h.waitFor(t, "the recycle opening generation 1", func(es []a16lEntry) bool {
		for _, e := range es {
			if e.op == "try" && e.res == "A" && e.w.Generation == 1 {
				return true
			}
		}
		return false
	})
	second := make(chan error, 1)
	var ran atomic.Bool
	go func() {
		second <- p.Do(ctx, func(_ context.Context, d a16lDeps) error {
			h.checkTask(d)
			ran.Store(true)
			return nil
		})
	}()
	a16lPoll(t, "the task to be queued", func() bool { return p.Stats().Queued == 1 })
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	a16lPoll(t, "the pool to stop serving", func() bool { return !p.Serving() })
	close(release)
	err := a16lAwait(t, stopErr, "app.Stop")
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("app.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
	}
	if err != nil {
		t.Errorf("app.Stop: %v", err)
	}
	if r := a16lAwait(t, second, "the queued Do"); r != nil || !ran.Load() {
		t.Errorf("queued task under Drain with a 30 s budget: Do = %v, ran %v; want it run", r, ran.Load())
	}
	h.checkLifecycle(t, true)
}

// MaxWorkerAge's rebuild, whose close of the old generation hangs until the
// stop has begun: the task that triggered it runs (Drain), nothing is left
// open.
func TestA16lAgeRebuildCloseRacesStop(t *testing.T) {
	h := a16lNew()
	clock := fxpooltest.NewClock()
	release := make(chan struct{})
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "C" && w.Generation == 0 {
			<-release
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.MaxWorkerAge(time.Hour), clock.Option()})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a16lGenOf(t, ctx, p, h)
	if err := clock.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	res := make(chan error, 1)
	var got atomic.Int32
	got.Store(-1)
	go func() {
		res <- p.Do(ctx, func(_ context.Context, d a16lDeps) error {
			h.checkTask(d)
			got.Store(int32(d.W.Generation))
			return nil
		})
	}()
	h.waitFor(t, "the age rebuild closing C of generation 0", a16lHas("close", "C", 0))
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	a16lPoll(t, "the pool to stop serving", func() bool { return !p.Serving() })
	close(release)
	err := a16lAwait(t, stopErr, "app.Stop")
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("app.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
	}
	if r := a16lAwait(t, res, "Do"); r != nil {
		t.Errorf("task that triggered the age rebuild: %v, want it run under Drain", r)
	} else if got.Load() != 1 {
		t.Errorf("task ran on generation %d, want 1", got.Load())
	}
	h.checkLifecycle(t, true)
}

// CheckIdle: an idle worker's health check runs before the task; it fails
// only once the stop has begun; the worker rebuilds ("failed check"), the
// task runs (Drain), and nothing is left open.
func TestA16lFailedCheckRebuildRacesStop(t *testing.T) {
	h := a16lNew()
	release := make(chan struct{})
	var armed atomic.Bool
	h.setCheck(func(ctx context.Context, res string, w resources.Worker) error {
		if armed.Load() && w.Generation == 0 {
			<-release
			return errA16lInjected
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.CheckIdle(5 * time.Millisecond)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a16lGenOf(t, ctx, p, h)
	armed.Store(true)
	time.Sleep(50 * time.Millisecond) // idle longer than CheckIdle's 5 ms
	res := make(chan error, 1)
	var got atomic.Int32
	got.Store(-1)
	go func() {
		res <- p.Do(ctx, func(_ context.Context, d a16lDeps) error {
			h.checkTask(d)
			got.Store(int32(d.W.Generation))
			return nil
		})
	}()
	h.waitFor(t, "the health check", a16lHas("check", "C", 0))
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	a16lPoll(t, "the pool to stop serving", func() bool { return !p.Serving() })
	close(release)
	err := a16lAwait(t, stopErr, "app.Stop")
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("app.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
	}
	if r := a16lAwait(t, res, "Do"); r != nil {
		t.Errorf("task behind a failed check: %v, want it run under Drain", r)
	} else if got.Load() != 1 {
		t.Errorf("task ran on generation %d, want 1 (after the rebuild)", got.Load())
	}
	var reasons []string
	for _, e := range a16lEvents[workerpool.WorkerRebuilt](h) {
		reasons = append(reasons, e.Reason)
	}
	if len(reasons) != 1 || reasons[0] != "failed check" {
		t.Errorf("WorkerRebuilt reasons %q, want [failed check]", reasons)
	}
	h.checkLifecycle(t, true)
}

// MaxWorkerAge on the real clock: once the resources are older than d, the
// next task runs on a fresh generation.
func TestA16lMaxWorkerAgeRealClock(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.MaxWorkerAge(20 * time.Millisecond)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g0 := a16lGenOf(t, ctx, p, h).Generation
	time.Sleep(100 * time.Millisecond) // older than 20 ms
	if g1 := a16lGenOf(t, ctx, p, h).Generation; g1 <= g0 {
		t.Errorf("after the resources aged past MaxWorkerAge, the task ran on generation %d (was %d)", g1, g0)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range a16lEvents[workerpool.WorkerRebuilt](h) {
		reasons = append(reasons, e.Reason)
		if e.Level() != zapcore.DebugLevel {
			t.Errorf("a recycle's WorkerRebuilt at level %v, want debug", e.Level())
		}
	}
	if len(reasons) == 0 || reasons[0] != "max worker age" {
		t.Errorf("WorkerRebuilt reasons %q", reasons)
	}
	h.checkLifecycle(t, true)
}

// A health check that panics, or calls runtime.Goexit: "If a check fails,
// the worker rebuilds its resources first" and WorkerRebuilt's Reason is
// "failed check" (a health check after idling failed, given as Cause); the
// task runs on fresh resources; nothing hangs, every generation closes once.
func TestA16lHealthCheckPanicRebuilds(t *testing.T) { a16lHealthCheckFault(t, "panic") }

// The same with runtime.Goexit in the check. The pool rebuilds and closes
// everything once, but reports the rebuild as a "restart" whose Cause wraps
// ErrGoexit ("the error of a task that called runtime.Goexit") and says
// "resources it left open are abandoned" although they were all closed.
func TestA16lHealthCheckGoexitIsAFailedCheck(t *testing.T) { a16lHealthCheckFault(t, "goexit") }

func a16lHealthCheckFault(t *testing.T, kind string) {
	h := a16lNew()
	var armed atomic.Bool
	h.setCheck(func(ctx context.Context, res string, w resources.Worker) error {
		if armed.Swap(false) {
			if kind == "panic" {
				panic("a16l: check")
			}
			runtime.Goexit()
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1), workerpool.CheckIdle(time.Millisecond)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a16lGenOf(t, ctx, p, h)
	armed.Store(true)
	time.Sleep(20 * time.Millisecond) // idle past CheckIdle
	done := make(chan resources.Worker, 1)
	go func() {
		var w resources.Worker
		err := p.Do(ctx, func(_ context.Context, d a16lDeps) error { h.checkTask(d); w = d.W; return nil })
		if err != nil {
			t.Errorf("task after a %s in the health check: %v", kind, err)
		}
		done <- w
	}()
	w := a16lAwait(t, done, "the task after a "+kind+" in the health check")
	if w.Generation != 1 {
		t.Errorf("task ran on generation %d, want 1 (rebuilt after the failed check)", w.Generation)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(ctx) }()
	if err := a16lAwait(t, stopped, "stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	rb := a16lEvents[workerpool.WorkerRebuilt](h)
	if len(rb) != 1 || rb[0].Reason != "failed check" || rb[0].Cause == nil {
		t.Errorf("WorkerRebuilt %+v, want one with reason \"failed check\"", rb)
	} else if errors.Is(rb[0].Cause, workerpool.ErrGoexit) {
		t.Errorf("the failed check's Cause wraps ErrGoexit, the error of a task: %v", rb[0].Cause)
	}
	if len(rb) == 1 && strings.Contains(fmt.Sprint(rb[0].Cause), "abandoned") {
		t.Errorf("the rebuild's Cause says resources were abandoned, but every one was closed: %v", rb[0].Cause)
	}
	h.checkLifecycle(t, true)
}
