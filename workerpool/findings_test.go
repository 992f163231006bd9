package workerpool_test

// Regression tests for the findings of issue 9 ("Core v2"), sections 2-5,
// written against the public API only, to the behaviour the rewrite
// promises. Every top-level test is named TestFindings...; the tests that
// need a process of their own are in findings_child_test.go.
//
// Conventions: every identifier here starts with fnd, so that these files
// do not collide with the package's other tests. No sleep is a timing
// assertion: waits are bounded by fndHang only to turn a hang into a
// failure. Every test that starts goroutines checks that they are gone
// (goleak), on top of the package's TestMain.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

// fndHang bounds every wait: past it, something hangs.
const fndHang = 10 * time.Second

// fndRes is a per-worker resource.
type fndRes struct {
	id, gen int
}

func fndNop[R any](context.Context, R) error { return nil }

// fndCtx returns a context that ends after fndHang.
func fndCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	t.Cleanup(cancel)
	return ctx
}

// fndBudget returns a context that ends after d: a stop budget.
func fndBudget(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fndNoLeaks notes the goroutines running now and returns a check that no
// other goroutine is left (goleak retries for a while before it fails).
func fndNoLeaks(t *testing.T) func() {
	t.Helper()
	known := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		if err := goleak.Find(known); err != nil {
			t.Errorf("goroutines left behind: %v", err)
		}
	}
}

// fndWithin runs f on a goroutine and reports whether it returned within d.
// A call that does not return is abandoned (and fails the test elsewhere).
func fndWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// fndWaitUntil waits, up to fndHang, until cond holds.
func fndWaitUntil(t *testing.T, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(fndHang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("%s: not within %v", what, fndHang)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// fndApp is a started app that is stopped once, by the test or when it
// ends.
type fndApp struct {
	*fx.App
	once    sync.Once
	stopErr error
}

// fndStart starts an app holding one pool and stops it when the test ends,
// unless the test stopped it.
func fndStart[R any](t *testing.T, name string, opts ...workerpool.Option) (*workerpool.Pool[R], *fndApp) {
	t.Helper()
	var p *workerpool.Pool[R]
	app := fx.New(fx.NopLogger, workerpool.Provide[R](name, opts...), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatalf("fx.New() = %v", err)
	}
	if err := app.Start(fndCtx(t)); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	a := &fndApp{App: app}
	t.Cleanup(func() { a.stop(t, nil) })
	return p, a
}

// stop stops the app once with ctx (nil: a context of fndHang) and returns
// Stop's error. A Stop that hangs fails the test and is abandoned.
func (a *fndApp) stop(t *testing.T, ctx context.Context) error {
	t.Helper()
	a.once.Do(func() {
		if ctx == nil {
			c, cancel := context.WithTimeout(context.Background(), fndHang)
			defer cancel()
			ctx = c
		}
		if !fndWithin(fndHang+5*time.Second, func() { a.stopErr = a.App.Stop(ctx) }) {
			a.stopErr = errors.New("app.Stop hung")
			t.Errorf("app.Stop did not return within %v", fndHang+5*time.Second)
		}
	})
	return a.stopErr
}

// fndCounter counts opens and closes of a per-worker *fndRes.
type fndCounter struct{ opened, closed atomic.Int32 }

func (c *fndCounter) resources() workerpool.Option {
	return workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, func(), error) {
		c.opened.Add(1)
		return &fndRes{id: w.ID, gen: w.Generation}, func() { c.closed.Add(1) }, nil
	}))
}

// fndDeadlines records, for every cleanup of a *fndRes, whether its
// context had a deadline.
type fndDeadlines struct {
	mu   sync.Mutex
	seen []bool
}

func (d *fndDeadlines) record(ctx context.Context) {
	_, ok := ctx.Deadline()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = append(d.seen, ok)
}

func (d *fndDeadlines) get() []bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]bool(nil), d.seen...)
}

func (d *fndDeadlines) check(t *testing.T, what string) {
	t.Helper()
	seen := d.get()
	if len(seen) == 0 {
		t.Fatalf("%s: no cleanup ran", what)
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("%s: cleanup %d got a context without a deadline: a cleanup that waits on it never ends", what, i)
		}
	}
}

// 1. The start budget (in process; the app.Run variant is in
// findings_child_test.go).
func TestFindingsStartBudget(t *testing.T) {
	leaks := fndNoLeaks(t)
	var c fndCounter
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*fndRes]("budgetpool",
			workerpool.Workers(4),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*fndRes, func(), error) {
				if w.ID == 3 { // the fourth open waits on its context
					<-ctx.Done()
					return nil, nil, context.Cause(ctx)
				}
				c.opened.Add(1)
				return &fndRes{id: w.ID}, func() { c.closed.Add(1) }, nil
			})),
		),
		fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var err error
	if !fndWithin(fndHang, func() { err = app.Start(ctx) }) {
		t.Fatal("app.Start hung past its deadline")
	}
	returned := time.Now()
	opened, closed := c.opened.Load(), c.closed.Load()

	t.Run("ErrorAtTheDeadline", func(t *testing.T) {
		if err == nil {
			t.Fatal("Start() = nil, want an error: the fourth worker never opened")
		}
		// Generous: fx itself returns at the deadline; this catches a hang.
		if late := returned.Sub(deadline); late > time.Second {
			t.Errorf("Start returned %v after its deadline", late)
		}
	})
	t.Run("ErrorNamesThePool", func(t *testing.T) {
		if err == nil || !strings.Contains(err.Error(), "budgetpool") {
			t.Errorf("Start() = %v, want an error naming the pool %q", err, "budgetpool")
		}
	})
	t.Run("EveryOpenedResourceClosedWhenStartReturns", func(t *testing.T) {
		if opened != 3 {
			t.Fatalf("%d resources opened, want 3", opened)
		}
		if closed != opened {
			t.Errorf("when Start returned: %d of %d opened resources closed", closed, opened)
		}
	})
	stopCtx, cancelStop := context.WithTimeout(context.Background(), fndHang)
	defer cancelStop()
	if !fndWithin(fndHang+time.Second, func() { _ = app.Stop(stopCtx) }) {
		t.Fatal("app.Stop hung")
	}
	t.Run("NoGoroutineAfterStop", func(t *testing.T) {
		if o, c := c.opened.Load(), c.closed.Load(); o != c {
			t.Errorf("after Stop: %d of %d opened resources closed", c, o)
		}
		leaks()
	})
}

// 2. The stop budget: closing gets its own share and is not starved by
// draining.
func TestFindingsStopBudget(t *testing.T) {
	leaks := fndNoLeaks(t)
	type cleanup struct {
		deadline bool
		err      error
	}
	var (
		mu       sync.Mutex
		cleanups []cleanup
	)
	p, a := fndStart[*fndRes](t, "stopbudget",
		workerpool.Workers(2),
		workerpool.QueueSize(64),
		workerpool.ErrorHandler(func(error) {}),
		workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, func(context.Context) error, error) {
			return &fndRes{id: w.ID}, func(ctx context.Context) error {
				// A flush that needs 60ms and honours its context.
				_, ok := ctx.Deadline()
				timer := time.NewTimer(60 * time.Millisecond)
				defer timer.Stop()
				var err error
				select {
				case <-timer.C:
				case <-ctx.Done():
					err = context.Cause(ctx)
				}
				mu.Lock()
				cleanups = append(cleanups, cleanup{ok, err})
				mu.Unlock()
				return err
			}, nil
		})),
	)
	// 2 running and 40 queued tasks of 50ms each: a second of work.
	for range 42 {
		if err := p.Go(fndCtx(t), func(context.Context, *fndRes) error {
			time.Sleep(50 * time.Millisecond) // a 50ms statement: not a timing assertion
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	err := a.stop(t, ctx)
	mu.Lock()
	got := append([]cleanup(nil), cleanups...)
	mu.Unlock()

	t.Run("CleanupsGetADeadline", func(t *testing.T) {
		for i, c := range got {
			if !c.deadline {
				t.Errorf("cleanup %d: no deadline: it cannot know how long it has", i)
			}
		}
	})
	t.Run("EveryCleanupCompletes", func(t *testing.T) {
		if len(got) != 2 {
			t.Errorf("%d cleanups ran, want 2", len(got))
		}
		for i, c := range got {
			if c.err != nil {
				t.Errorf("cleanup %d cut short: %v: closing was starved by draining", i, c.err)
			}
		}
	})
	t.Run("StopSucceeds", func(t *testing.T) {
		if err != nil {
			t.Errorf("Stop() = %v", err)
		}
	})
	leaks()
}

// 3. A task that calls runtime.Goexit.
func TestFindingsGoexit(t *testing.T) {
	goexit := func(context.Context, *fndRes) error {
		runtime.Goexit()
		return nil
	}
	t.Run("ReportedToDo", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources())
		err := p.Do(fndCtx(t), goexit)
		if err == nil || !errors.Is(err, workerpool.ErrGoexit) {
			t.Errorf("Do() = %v, want ErrGoexit", err)
		}
		a.stop(t, fndBudget(t, 2*time.Second))
		leaks()
	})
	t.Run("ReportedToSubmitter", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources())
		f, err := workerpool.Submit(fndCtx(t), p, func(ctx context.Context, r *fndRes) (int, error) {
			return 1, goexit(ctx, r)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(fndCtx(t)); err == nil || !errors.Is(err, workerpool.ErrGoexit) {
			t.Errorf("Future.Wait() = %v, want ErrGoexit", err)
		}
		a.stop(t, fndBudget(t, 2*time.Second))
		leaks()
	})
	t.Run("ReportedToErrorHandler", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		handled := make(chan error, 1)
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources(),
			workerpool.ErrorHandler(func(err error) {
				select {
				case handled <- err:
				default:
				}
			}))
		if err := p.Go(fndCtx(t), goexit); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-handled:
			if !errors.Is(err, workerpool.ErrGoexit) {
				t.Errorf("ErrorHandler got %v, want ErrGoexit", err)
			}
		case <-time.After(fndHang):
			t.Error("the ErrorHandler was never told of the Goexit of a task of Go")
		}
		a.stop(t, fndBudget(t, 2*time.Second))
		leaks()
	})
	t.Run("QueuedTasksStillRun", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources(),
			workerpool.ErrorHandler(func(error) {}))
		gate := make(chan struct{})
		if err := p.Go(fndCtx(t), func(ctx context.Context, r *fndRes) error {
			<-gate
			return goexit(ctx, r)
		}); err != nil {
			t.Fatal(err)
		}
		f, err := workerpool.Submit(fndCtx(t), p, func(context.Context, *fndRes) (string, error) { return "ran", nil })
		if err != nil {
			t.Fatal(err)
		}
		close(gate)
		if v, err := f.Wait(fndCtx(t)); v != "ran" || err != nil {
			t.Errorf("task queued behind the Goexit: Wait() = %q, %v, want it run", v, err)
		}
		a.stop(t, fndBudget(t, 2*time.Second))
		leaks()
	})
	t.Run("WorkerRebuilt", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources())
		_ = p.Do(fndCtx(t), goexit)
		if err := p.Do(fndCtx(t), fndNop[*fndRes]); err != nil {
			t.Errorf("Do() after the Goexit = %v", err)
		}
		if s := p.Stats(); s.Restarts < 1 {
			t.Errorf("Stats().Restarts = %d, want the worker rebuilt", s.Restarts)
		}
		if o, cl := c.opened.Load(), c.closed.Load(); o != 2 || cl != 1 {
			t.Errorf("while serving after the Goexit: %d opened, %d closed, want 2 and 1", o, cl)
		}
		a.stop(t, fndBudget(t, 2*time.Second))
		if o, cl := c.opened.Load(), c.closed.Load(); o != cl {
			t.Errorf("after Stop: %d opened, %d closed", o, cl)
		}
		leaks()
	})
	t.Run("StopPromptly", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		p, a := fndStart[*fndRes](t, "goexit", workerpool.Workers(1), c.resources())
		_ = p.Do(fndCtx(t), goexit)
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		err := a.stop(t, ctx)
		if ctx.Err() != nil {
			t.Errorf("Stop took its whole budget: %v", err)
		}
		if err != nil && strings.Contains(err.Error(), "ignores its context") {
			t.Errorf("Stop() = %v: it blames a task that ignores its context for a Goexit", err)
		}
		if o, cl := c.opened.Load(), c.closed.Load(); o != cl {
			t.Errorf("after Stop: %d opened, %d closed", o, cl)
		}
		leaks()
	})
}

// Not in the list: Goexit outside a task. A per-worker
// constructor or cleanup that calls runtime.Goexit (t.FailNow or testify's
// require in a test's constructor) runs on a pool goroutine, as a task
// does; hooks.Stack and the plan recover panics but not Goexit.
func TestFindingsGoexitOutsideTasks(t *testing.T) {
	t.Run("InConstructor/StartReturns", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*fndRes]("goexitopen", workerpool.Workers(2),
				workerpool.Resources(resources.PerWorker(func(w resources.Worker) *fndRes {
					if w.ID == 1 {
						runtime.Goexit()
					}
					return &fndRes{id: w.ID}
				}))),
			fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
		)
		var err error
		if !fndWithin(fndHang, func() { err = app.Start(context.Background()) }) {
			t.Fatalf("Start(context.Background()) did not return within %v: an opener died in Goexit", fndHang)
		}
		if err == nil {
			t.Error("Start() = nil, want the Goexit of worker 1's constructor as an error")
		}
		ctx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		if !fndWithin(fndHang+time.Second, func() { _ = app.Stop(ctx) }) {
			t.Error("Stop hung")
		}
		leaks()
	})
	t.Run("InCleanup/StopReturns", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		_, a := fndStart[*fndRes](t, "goexitclose", workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() (*fndRes, func(), error) {
				return &fndRes{}, func() { runtime.Goexit() }, nil
			})))
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		err := a.stop(t, ctx)
		if ctx.Err() != nil {
			t.Errorf("Stop took its whole budget: %v", err)
		}
		if err == nil {
			t.Error("Stop() = nil, want the cleanup's Goexit as an error")
		}
		leaks()
	})
}

// fndBlock occupies n workers of an elastic pool until release.
func fndBlock[R any](t *testing.T, p *workerpool.Pool[R], n int) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	started := make(chan struct{}, n)
	for range n {
		if err := p.Go(fndCtx(t), func(ctx context.Context, _ R) error {
			started <- struct{}{}
			select {
			case <-gate:
			case <-ctx.Done():
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	timer := time.NewTimer(fndHang)
	defer timer.Stop()
	for i := range n {
		select {
		case <-started:
		case <-timer.C:
			close(gate)
			t.Fatalf("only %d of %d blocking tasks started", i, n)
		}
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

// 5. Elastic pools.
func TestFindingsElastic(t *testing.T) {
	t.Run("TaskDuringRetirementRuns", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		p, a := fndStart[*fndRes](t, "retiring",
			workerpool.Elastic(0, 1, time.Millisecond),
			workerpool.Resources(resources.PerWorker(func() (*fndRes, func(), error) {
				// A close that takes a moment widens the retirement.
				return &fndRes{}, func() { time.Sleep(200 * time.Microsecond) }, nil
			})),
		)
		for i := range 200 {
			// Vary the gap around the idle timeout, so that some tasks
			// arrive while the only worker retires: not a timing assertion.
			time.Sleep(time.Duration(i%7) * 250 * time.Microsecond)
			ctx, cancel := context.WithTimeout(context.Background(), fndHang)
			err := p.Do(ctx, fndNop[*fndRes])
			cancel()
			if err != nil {
				t.Fatalf("try %d: Do() = %v: the task was stranded while the only worker retired", i, err)
			}
		}
		a.stop(t, nil)
		leaks()
	})
	t.Run("QueueSizeZeroRefused", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			workerpool.Provide[resources.Worker]("elastic0",
				workerpool.Elastic(0, 2, time.Second), workerpool.QueueSize(0)),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		err := app.Err()
		if err == nil || !strings.Contains(err.Error(), "Elastic") || !strings.Contains(err.Error(), "QueueSize") {
			t.Errorf("fx.New() = %v, want an error naming Elastic and QueueSize: such a pool never grows", err)
		}
	})
	t.Run("NoWorkersAfterStop", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		// The miscount is a race: try a few pools.
		for try := range 500 {
			p, a := fndStart[resources.Worker](t, "grown", workerpool.Elastic(0, 2, time.Hour))
			release := fndBlock(t, p, 2)
			fndWaitUntil(t, "Stats().Workers == 2", func() bool { return p.Stats().Workers == 2 })
			release()
			if err := a.stop(t, nil); err != nil {
				t.Errorf("Stop() = %v", err)
			}
			if s := p.Stats(); s.Workers != 0 {
				t.Errorf("try %d: right after Stop: Stats() = %+v, want 0 workers", try, s)
				break
			}
		}
		leaks()
	})
}

// 6. Every cleanup gets a bounded context.
func TestFindingsCleanupContext(t *testing.T) {
	deadlines := func(d *fndDeadlines) workerpool.Option {
		return workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, func(context.Context) error, error) {
			return &fndRes{id: w.ID, gen: w.Generation}, func(ctx context.Context) error { d.record(ctx); return nil }, nil
		}))
	}
	t.Run("Rebuild", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var d fndDeadlines
		p, a := fndStart[*fndRes](t, "rebuilt", workerpool.Workers(1), deadlines(&d))
		broken := p.Do(fndCtx(t), func(context.Context, *fndRes) error {
			return fmt.Errorf("conn reset: %w", resources.ErrBroken)
		})
		if !errors.Is(broken, resources.ErrBroken) {
			t.Fatalf("Do() = %v", broken)
		}
		// The rebuild happens before the worker's next task.
		if err := p.Do(fndCtx(t), fndNop[*fndRes]); err != nil {
			t.Fatal(err)
		}
		d.check(t, "rebuild")
		a.stop(t, nil)
		leaks()
	})
	rollback := func(t *testing.T, ctx context.Context) {
		leaks := fndNoLeaks(t)
		var (
			d        fndDeadlines
			once     sync.Once
			opened0  = make(chan struct{})
			declared = workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, func(context.Context) error, error) {
				if w.ID == 1 { // fails once worker 0 has opened
					select {
					case <-opened0:
					case <-time.After(fndHang):
					}
					return nil, nil, errors.New("worker 1 cannot open")
				}
				return &fndRes{id: w.ID}, func(ctx context.Context) error { d.record(ctx); return nil }, nil
			}))
		)
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*fndRes]("rolledback", workerpool.Workers(2), declared,
				workerpool.Events(func(e workerpool.Event) {
					if o, ok := e.(workerpool.WorkerOpened); ok && o.Worker.ID == 0 && o.Err == nil {
						once.Do(func() { close(opened0) })
					}
				})),
			fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
		)
		var err error
		if !fndWithin(fndHang+5*time.Second, func() { err = app.Start(ctx) }) {
			t.Fatal("Start hung")
		}
		if err == nil {
			t.Fatal("Start() = nil, want worker 1's error")
		}
		d.check(t, "start rollback")
		stopCtx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		if !fndWithin(fndHang+time.Second, func() { _ = app.Stop(stopCtx) }) {
			t.Error("Stop hung")
		}
		leaks()
	}
	t.Run("StartRollback", func(t *testing.T) {
		rollback(t, context.Background()) // a start without a deadline
	})
	t.Run("StartRollbackWithStartDeadline", func(t *testing.T) {
		rollback(t, fndCtx(t))
	})
	t.Run("ElasticRetirement", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var d fndDeadlines
		p, a := fndStart[*fndRes](t, "retired", workerpool.Elastic(0, 1, time.Millisecond), deadlines(&d))
		if err := p.Do(fndCtx(t), fndNop[*fndRes]); err != nil {
			t.Fatal(err)
		}
		if fndWaitUntil(t, "the idle worker retires", func() bool { return len(d.get()) > 0 }) {
			d.check(t, "elastic retirement")
		}
		a.stop(t, nil)
		leaks()
	})
}

// 7. A worker retrying a failing reopen sees the stop.
func TestFindingsFailingReopen(t *testing.T) {
	// failing starts a pool whose reopen always fails, makes a task panic,
	// and waits for the first failed reopen.
	failing := func(t *testing.T, opts ...workerpool.Option) (*workerpool.Pool[*fndRes], *fndApp, *atomic.Int32) {
		t.Helper()
		attempts := new(atomic.Int32)
		p, a := fndStart[*fndRes](t, "reopening", append([]workerpool.Option{
			workerpool.Workers(1),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, error) {
				if w.Generation >= 1 {
					attempts.Add(1)
					return nil, errors.New("server down")
				}
				return &fndRes{}, nil
			})),
		}, opts...)...)
		if err := p.Go(fndCtx(t), func(context.Context, *fndRes) error { panic("bad state") }); err != nil {
			t.Fatal(err)
		}
		fndWaitUntil(t, "a failed reopen", func() bool { return attempts.Load() >= 1 })
		return p, a, attempts
	}
	t.Run("StopWithoutDeadlineReturns", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		_, a, _ := failing(t)
		var err error
		if !fndWithin(fndHang, func() { err = a.App.Stop(context.Background()) }) {
			t.Fatalf("app.Stop(context.Background()) did not return within %v: the retrying worker does not see the stop", fndHang)
		}
		a.once.Do(func() {}) // stopped
		if err != nil {
			t.Errorf("Stop() = %v", err)
		}
		leaks()
	})
	t.Run("IdleStopBeforeDeadline", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		_, a, _ := failing(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := a.stop(t, ctx)
		if ctx.Err() != nil {
			t.Errorf("Stop of an idle pool took its whole budget")
		}
		if err != nil {
			t.Errorf("Stop() = %v", err)
		}
		leaks()
	})
	t.Run("NoReopenAfterStopBegins", func(t *testing.T) {
		// Inferred from the finding ("does not see the stop"): once the
		// stop has begun, a worker with no resources and no task has
		// nothing to reopen for. At most the attempt under way finishes.
		leaks := fndNoLeaks(t)
		_, a, attempts := failing(t)
		before := attempts.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.stop(t, ctx)
		if after := attempts.Load() - before; after > 1 {
			t.Errorf("%d reopen attempts after the stop began, want at most 1", after)
		}
		leaks()
	})
}

// 8. A second Start after Stop fails clearly.
func TestFindingsRestart(t *testing.T) {
	t.Run("SecondStartFails", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		p, a := fndStart[resources.Worker](t, "restartpool", workerpool.Workers(1))
		if err := a.stop(t, nil); err != nil {
			t.Fatalf("Stop() = %v", err)
		}
		var err error
		if !fndWithin(fndHang, func() { err = a.App.Start(fndCtx(t)) }) {
			t.Fatal("second Start hung")
		}
		if err == nil || !errors.Is(err, workerpool.ErrClosed) || !strings.Contains(err.Error(), "restartpool") {
			t.Errorf("second Start() = %v, want an error wrapping ErrClosed and naming the pool", err)
		}
		if err == nil { // the pool claims to serve: does it?
			t.Logf("after the second Start, Do() = %v", p.Do(fndCtx(t), fndNop[resources.Worker]))
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		if !fndWithin(fndHang+time.Second, func() { _ = a.App.Stop(stopCtx) }) {
			t.Error("second Stop hung")
		}
		leaks()
	})
}

// 9. Per-worker constructors that can never work are refused at fx.New.
func TestFindingsPerWorkerConstructor(t *testing.T) {
	t.Run("FxLifecycleRefused", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*fndRes]("lcpool", workerpool.Resources(
				resources.PerWorker(func(lc fx.Lifecycle) *fndRes { return &fndRes{} }))),
			fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
		)
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), "fx.Lifecycle") {
			t.Errorf("fx.New() = %v, want an error naming fx.Lifecycle", err)
		}
	})
	t.Run("ContextResultRefused", func(t *testing.T) {
		type deps struct {
			fx.In
			W resources.Worker
		}
		app := fx.New(fx.NopLogger,
			workerpool.Provide[deps]("ctxpool", workerpool.Resources(
				resources.PerWorker(func(ctx context.Context) context.Context { return ctx }))),
			fx.Invoke(func(*workerpool.Pool[deps]) {}),
		)
		if err := app.Err(); err == nil {
			t.Error("fx.New() = nil, want an error: nothing can receive a per-worker context.Context")
		} else {
			t.Logf("fx.New() = %v", err)
		}
	})
}

// 10. The constructor's context ends when the start ends.
func TestFindingsConstructorContext(t *testing.T) {
	t.Run("DoneOnceStartReturned", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var (
			mu   sync.Mutex
			ctxs []context.Context
		)
		_, a := fndStart[*fndRes](t, "ctxs", workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context) *fndRes {
				mu.Lock()
				ctxs = append(ctxs, ctx)
				mu.Unlock()
				return &fndRes{}
			})))
		mu.Lock()
		got := append([]context.Context(nil), ctxs...)
		mu.Unlock()
		if len(got) != 2 {
			t.Errorf("%d constructor calls, want 2", len(got))
		}
		for i, ctx := range got {
			if ctx.Err() == nil {
				t.Errorf("constructor context %d not done once Start returned", i)
			}
		}
		a.stop(t, nil)
		leaks()
	})
}

// fndConfig is an app's config, read by OptionsFrom.
type fndConfig struct{ Workers int }

// 12. OptionsFrom.
func TestFindingsOptionsFrom(t *testing.T) {
	// 8 workers from the config; the pool's default (GOMAXPROCS) must
	// differ for the test to mean anything.
	n := 8
	if runtime.GOMAXPROCS(0) == n {
		n = 9
	}
	fromConfig := workerpool.OptionsFrom(func(c fndConfig) []workerpool.Option {
		return []workerpool.Option{workerpool.Workers(c.Workers)}
	})
	start := func(t *testing.T, opts ...workerpool.Option) (*workerpool.Pool[resources.Worker], *fx.App) {
		t.Helper()
		var p *workerpool.Pool[resources.Worker]
		app := fx.New(fx.NopLogger,
			fx.Supply(fndConfig{Workers: n}),
			workerpool.Provide[resources.Worker]("fromconfig", append([]workerpool.Option{fromConfig}, opts...)...),
			fx.Populate(&p),
		)
		if err := app.Err(); err != nil {
			t.Fatal(err)
		}
		return p, app
	}
	stop := func(t *testing.T, app *fx.App) {
		ctx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		if !fndWithin(fndHang+time.Second, func() { _ = app.Stop(ctx) }) {
			t.Error("Stop hung")
		}
	}
	t.Run("QueueFollowsWorkers", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		p, app := start(t)
		if err := app.Start(fndCtx(t)); err != nil {
			t.Fatal(err)
		}
		release := fndBlock(t, p, n)
		accepted := 0
		for range 4*n + 8 {
			if p.TryGo(fndNop[resources.Worker]) {
				accepted++
			}
		}
		if accepted != 4*n {
			t.Errorf("with %d workers, all busy: TryGo accepted %d tasks, want a queue of 4 × %d = %d", n, accepted, n, 4*n)
		}
		release()
		stop(t, app)
		leaks()
	})
	t.Run("StartConcurrencyFollowsWorkers", func(t *testing.T) {
		// From the issue: StartConcurrency, too, stayed at the old count.
		leaks := fndNoLeaks(t)
		var (
			arrived atomic.Int32
			all     = make(chan struct{})
		)
		app := fx.New(fx.NopLogger,
			fx.Supply(fndConfig{Workers: n}),
			workerpool.Provide[*fndRes]("fromconfig", fromConfig,
				workerpool.Resources(resources.PerWorker(func(ctx context.Context) (*fndRes, error) {
					// Every worker opens at once: each waits for all.
					if arrived.Add(1) == int32(n) {
						close(all)
					}
					select {
					case <-all:
						return &fndRes{}, nil
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-time.After(fndHang):
						return nil, fmt.Errorf("only %d of %d workers opening at once", arrived.Load(), n)
					}
				}))),
			fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
		)
		if err := app.Err(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*fndHang)
		defer cancel()
		if err := app.Start(ctx); err != nil {
			t.Errorf("Start() = %v, want all %d workers from the config opening at once", err, n)
		}
		stop(t, app)
		leaks()
	})
	t.Run("WrongOnDroppedTypeRefused", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		app := fx.New(fx.NopLogger,
			fx.Supply(fndConfig{Workers: 1}),
			workerpool.Provide[resources.Worker]("wrongdropped", workerpool.OptionsFrom(func(fndConfig) []workerpool.Option {
				return []workerpool.Option{workerpool.OnDropped(func(_ context.Context, _ func(context.Context, string) error) {})}
			})),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		err := app.Err()
		if err == nil {
			err = app.Start(fndCtx(t))
			stop(t, app)
		}
		if err == nil || !strings.Contains(err.Error(), "OnDropped") {
			t.Errorf("fx.New()/Start() = %v, want an error naming OnDropped of the wrong task type", err)
		}
		leaks()
	})
}

// 13. TryGo right after Start finds an idle worker.
func TestFindingsTryGoRightAfterStart(t *testing.T) {
	leaks := fndNoLeaks(t)
	refused := 0
	for i := range 100 {
		var p *workerpool.Pool[resources.Worker]
		app := fx.New(fx.NopLogger,
			workerpool.Provide[resources.Worker]("trygo", workerpool.QueueSize(0), workerpool.Workers(2)),
			fx.Populate(&p))
		if err := app.Start(fndCtx(t)); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if !p.TryGo(fndNop[resources.Worker]) {
			refused++
		}
		ctx, cancel := context.WithTimeout(context.Background(), fndHang)
		err := app.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
	if refused > 0 {
		t.Errorf("TryGo right after Start refused in %d of 100 starts: the workers were not yet waiting", refused)
	}
	leaks()
}

// 14. fx integration.
func TestFindingsFxIntegration(t *testing.T) {
	t.Run("PrivateHiddenOutsideModule", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			fx.Module("m", workerpool.Provide[resources.Worker]("p", workerpool.Private(), workerpool.Workers(1))),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		if err := app.Err(); err == nil {
			t.Error("fx.New() = nil: a Private pool is visible outside its module")
			ctx, cancel := context.WithTimeout(context.Background(), fndHang)
			defer cancel()
			if app.Start(ctx) == nil {
				_ = app.Stop(ctx)
			}
		}
	})
	t.Run("PrivateUsableInsideModule", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var p *workerpool.Pool[resources.Worker]
		app := fx.New(fx.NopLogger,
			fx.Module("m",
				workerpool.Provide[resources.Worker]("p", workerpool.Private(), workerpool.Workers(1)),
				fx.Populate(&p),
			),
		)
		if err := app.Err(); err != nil {
			t.Fatalf("fx.New() = %v", err)
		}
		if err := app.Start(fndCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := p.Do(fndCtx(t), fndNop[resources.Worker]); err != nil {
			t.Errorf("Do() = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Error(err)
		}
		leaks()
	})
}

// 15. Generation is 0 for a worker's first resources and +1 per rebuild.
func TestFindingsGeneration(t *testing.T) {
	gen := func(t *testing.T, p *workerpool.Pool[*fndRes]) int {
		t.Helper()
		f, err := workerpool.Submit(fndCtx(t), p, func(_ context.Context, r *fndRes) (int, error) { return r.gen, nil })
		if err != nil {
			t.Fatal(err)
		}
		g, err := f.Wait(fndCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	broken := func(context.Context, *fndRes) error { return fmt.Errorf("reset: %w", resources.ErrBroken) }
	t.Run("FirstIsZero", func(t *testing.T) {
		var c fndCounter
		p, _ := fndStart[*fndRes](t, "gens", workerpool.Workers(1), c.resources())
		if g := gen(t, p); g != 0 {
			t.Errorf("first generation %d, want 0", g)
		}
	})
	t.Run("PlusOnePerRebuild", func(t *testing.T) {
		var c fndCounter
		p, _ := fndStart[*fndRes](t, "gens", workerpool.Workers(1), c.resources())
		for want := 1; want <= 2; want++ {
			_ = p.Do(fndCtx(t), broken)
			if g := gen(t, p); g != want {
				t.Errorf("after %d rebuilds: generation %d, want %d", want, g, want)
			}
		}
	})
	t.Run("FailedReopenConsumesNoNumber", func(t *testing.T) {
		var failed atomic.Bool
		p, _ := fndStart[*fndRes](t, "gens", workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, error) {
				if w.Generation >= 1 && failed.CompareAndSwap(false, true) {
					return nil, errors.New("first reopen fails")
				}
				return &fndRes{gen: w.Generation}, nil
			})))
		_ = p.Do(fndCtx(t), broken)
		if g := gen(t, p); g != 1 {
			t.Errorf("after one rebuild whose first attempt failed: generation %d, want 1", g)
		}
	})
	t.Run("ElasticGrownStartsAtZero", func(t *testing.T) {
		var c fndCounter
		p, _ := fndStart[*fndRes](t, "gens", workerpool.Elastic(0, 1, time.Hour), c.resources())
		if g := gen(t, p); g != 0 {
			t.Errorf("a worker grown on demand in a never used slot: generation %d, want 0", g)
		}
	})
}

// 16. The Registry refuses two pools of one name.
func TestFindingsRegistry(t *testing.T) {
	t.Run("DuplicateNameRefused", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var c fndCounter
		app := fx.New(fx.NopLogger,
			fxpool.Module,
			workerpool.Provide[resources.Worker]("dup", workerpool.Workers(1)),
			workerpool.Provide[*fndRes]("dup", workerpool.Workers(1), c.resources()),
			fx.Invoke(func(*workerpool.Pool[resources.Worker], *workerpool.Pool[*fndRes]) {}),
		)
		err := app.Err()
		if err == nil {
			err = app.Start(fndCtx(t))
			ctx, cancel := context.WithTimeout(context.Background(), fndHang)
			defer cancel()
			_ = app.Stop(ctx)
		}
		if err == nil || !strings.Contains(err.Error(), `dup`) {
			t.Errorf("fx.New()/Start() = %v, want an error naming the duplicate name %q", err, "dup")
		}
		leaks()
	})
}

// Issue 9, section 4, "fx skips the pool's OnStop": a hook that stops
// before the pool (registered after it) uses up the stop budget, and fx
// skips the pool's OnStop. The strongest guarantee fx allows is opt-in:
// with workerpool.StopGuard last, once app.Stop has returned the pool
// refuses tasks and its resources are closed, with no goroutine left.
func TestFindingsSkippedOnStop(t *testing.T) {
	leaks := fndNoLeaks(t)
	var (
		c fndCounter
		p *workerpool.Pool[*fndRes]
	)
	app := fx.New(fx.NopLogger,
		fx.Provide(workerpool.NewRegistry),
		workerpool.Provide[*fndRes]("skipped", workerpool.Workers(2), c.resources()),
		fx.Populate(&p),
		fx.Invoke(func(_ *workerpool.Pool[*fndRes], lc fx.Lifecycle) {
			// Stops first, like a graceful HTTP shutdown with slow clients.
			lc.Append(fx.StopHook(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}))
		}),
		workerpool.StopGuard(),
	)
	if err := app.Start(fndCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if !fndWithin(fndHang, func() { _ = app.Stop(ctx) }) {
		t.Fatal("Stop hung")
	}
	t.Run("RefusesTasksAfterStop", func(t *testing.T) {
		if err := p.Go(fndCtx(t), fndNop[*fndRes]); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Go() after app.Stop returned = %v, want ErrClosed", err)
		}
	})
	t.Run("ResourcesClosed", func(t *testing.T) {
		fndWaitUntil(t, "every opened resource closed", func() bool { return c.closed.Load() == c.opened.Load() })
	})
	leaks()
}

// Issue 9, section 5: error messages. Each test pins one finding; the
// message formats are the rewrite's to choose, within what is asserted.
func TestFindingsErrorMessages(t *testing.T) {
	type (
		resA struct{ id int }
		resB struct{ id int }
		deps struct {
			fx.In
			A *resA
			B *resB
		}
	)
	t.Run("TeardownEveryLineNamesItsWorker", func(t *testing.T) {
		// Assumes one line per failed cleanup, as errors.Join prints.
		leaks := fndNoLeaks(t)
		_, a := fndStart[deps](t, "teardown", workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func(w resources.Worker) (*resA, func() error, error) {
				return &resA{w.ID}, func() error { return fmt.Errorf("closeA failed for %d", w.ID) }, nil
			}),
			resources.PerWorker(func(w resources.Worker, _ *resA) (*resB, func() error, error) {
				return &resB{w.ID}, func() error { return fmt.Errorf("closeB failed for %d", w.ID) }, nil
			}),
		))
		err := a.stop(t, nil)
		if err == nil {
			t.Fatal("Stop() = nil, want the cleanups' errors")
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			for id := range 2 {
				if strings.Contains(line, fmt.Sprintf("failed for %d", id)) && !strings.Contains(line, fmt.Sprintf("worker %d", id)) {
					t.Errorf("line %q does not name its worker; whole error:\n%v", line, err)
				}
			}
		}
		leaks()
	})
	t.Run("OtherWorkersFailedOnTheFirstLine", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		app := fx.New(fx.NopLogger,
			workerpool.Provide[deps]("otherfailed", workerpool.Workers(3), workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*resA, func() error, error) {
					return &resA{w.ID}, func() error { return errors.New("closeA failed") }, nil
				}),
				resources.PerWorker(func(_ *resA) (*resB, error) { return nil, errors.New("openB failed\nwith a second line") }),
			)),
			fx.Invoke(func(*workerpool.Pool[deps]) {}),
		)
		err := app.Start(fndCtx(t))
		if err == nil {
			t.Fatal("Start() = nil")
		}
		lines := strings.Split(err.Error(), "\n")
		for i, line := range lines {
			if strings.Contains(line, "other workers failed") && i != 0 {
				t.Errorf("%q is on line %d, not on the first line with the failure it counts:\n%v", "other workers failed", i+1, err)
			}
		}
		_ = app.Stop(fndCtx(t))
		leaks()
	})
	t.Run("RollbackNamesOnlyWorkersReallyOpening", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var (
			release = make(chan struct{})
			started = make(chan error, 1)
		)
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*fndRes]("rollbackmsg", workerpool.Workers(3), workerpool.StartConcurrency(1),
				workerpool.Events(func(e workerpool.Event) {
					if ps, ok := e.(workerpool.PoolStarted); ok {
						started <- ps.Err
					}
				}),
				workerpool.Resources(resources.PerWorker(func(w resources.Worker) *fndRes {
					if w.ID == 0 {
						<-release // ignores its context
					}
					return &fndRes{id: w.ID}
				}))),
			fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
		)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = app.Start(ctx)
		var err error
		select {
		case err = <-started:
		case <-time.After(fndHang):
			t.Error("no PoolStarted event")
		}
		close(release)
		if err == nil {
			t.Error("PoolStarted.Err = nil, want the start's failure")
		} else {
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.Contains(line, "stuck") && (strings.Contains(line, "worker 1") || strings.Contains(line, "worker 2")) {
					t.Errorf("a worker that never began to open is called stuck: %q\nwhole error:\n%v", line, err)
				}
			}
			if !strings.Contains(err.Error(), "worker 0") || !strings.Contains(err.Error(), "fndRes") {
				t.Errorf("PoolStarted.Err = %v, want it to name worker 0 and the constructor it is stuck in (*fndRes)", err)
			}
		}
		stopCtx, cancelStop := context.WithTimeout(context.Background(), fndHang)
		defer cancelStop()
		_ = app.Stop(stopCtx)
		leaks()
	})
	t.Run("HungCheckIsNotStuckServing", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		var (
			release  = make(chan struct{})
			checking = make(chan struct{}, 1)
		)
		p, a := fndStart[*fndRes](t, "hungcheck", workerpool.Workers(1),
			workerpool.CheckIdle(time.Millisecond),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.Resources(resources.PerWorker(func() *fndRes { return &fndRes{} },
				resources.Check(func(context.Context, *fndRes) error {
					select {
					case checking <- struct{}{}:
					default:
					}
					<-release // ignores its context
					return nil
				}))))
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		defer unblock()
		time.Sleep(20 * time.Millisecond) // idle past CheckIdle: not an assertion
		if err := p.Go(fndCtx(t), fndNop[*fndRes]); err != nil {
			t.Fatal(err)
		}
		select {
		case <-checking:
		case <-time.After(fndHang):
			t.Fatal("the health check never ran")
		}
		err := a.stop(t, fndBudget(t, 400*time.Millisecond))
		if err == nil || strings.Contains(err.Error(), "stuck serving") || !strings.Contains(err.Error(), "check") {
			t.Errorf("Stop() = %v, want it to say the worker is stuck in a health check", err)
		}
		unblock()
		leaks()
	})
	t.Run("PoolFailedNamesTheCause", func(t *testing.T) {
		leaks := fndNoLeaks(t)
		failed := make(chan error, 1)
		p, a := fndStart[resources.Worker](t, "failing", workerpool.Workers(1),
			workerpool.MaxRestarts(1, time.Minute),
			workerpool.Events(func(e workerpool.Event) {
				if f, ok := e.(workerpool.PoolFailed); ok {
					failed <- f.Err
				}
			}))
		for range 2 {
			_ = p.Do(fndCtx(t), func(context.Context, resources.Worker) error {
				return fmt.Errorf("conn reset 4711: %w", resources.ErrBroken)
			})
		}
		select {
		case err := <-failed:
			if err == nil || !strings.Contains(err.Error(), "conn reset 4711") {
				t.Errorf("PoolFailed.Err = %v, want it to give the cause of the restarts", err)
			}
		case <-time.After(fndHang):
			t.Error("the pool did not fail")
		}
		a.stop(t, nil)
		leaks()
	})
}
