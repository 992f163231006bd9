package workerpool_test

// Round 3 of adversarial tests: the task API at its edges — nil and
// invalid arguments, calls from inside tasks and callbacks, a second stop
// with a budget of its own, and the outcome of each accepted task.

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

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const a3Hang = 20 * time.Second

type a3Key struct{}

// a3Call runs f on its own goroutine and returns what it returned and what
// it panicked with; it fails the test if f has not returned within a3Hang.
func a3Call(t *testing.T, what string, f func() error) (panicked any, err error) {
	t.Helper()
	type res struct {
		err error
		p   any
	}
	ch := make(chan res, 1)
	go func() {
		r := res{p: "runtime.Goexit"}
		defer func() {
			if p := recover(); p != nil {
				r.p = p
			}
			ch <- r
		}()
		r.err = f()
		r.p = nil
	}()
	select {
	case r := <-ch:
		return r.p, r.err
	case <-time.After(a3Hang):
		t.Fatalf("hang: %s still running after %v", what, a3Hang)
		return nil, nil
	}
}

func a3Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestAttack3NilArguments: every submission API given a nil context, a nil
// task or a nil callback returns an error (or false) that names it, and
// neither panics nor hangs; the pool goes on serving afterwards.
func TestAttack3NilArguments(t *testing.T) {
	p, _ := atkStart[W](t, "a3nil", workerpool.Workers(2))
	noop := func(context.Context, W) error { return nil }
	var nilCtx context.Context
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"Go(nil ctx)", func() error { return p.Go(nilCtx, noop) }, workerpool.ErrNilContext},
		{"Go(nil task)", func() error { return p.Go(context.Background(), nil) }, workerpool.ErrNilTask},
		{"Do(nil ctx)", func() error { return p.Do(nilCtx, noop) }, workerpool.ErrNilContext},
		{"Do(nil task)", func() error { return p.Do(context.Background(), nil) }, workerpool.ErrNilTask},
		{"Submit(nil ctx)", func() error {
			_, err := workerpool.Submit(nilCtx, p, func(context.Context, W) (int, error) { return 1, nil })
			return err
		}, workerpool.ErrNilContext},
		{"Submit(nil task)", func() error {
			_, err := workerpool.Submit[W, int](context.Background(), p, nil)
			return err
		}, workerpool.ErrNilTask},
		{"GoReport(nil ctx)", func() error { return p.GoReport(nilCtx, noop, func(workerpool.Outcome, error) {}) }, workerpool.ErrNilContext},
		{"GoReport(nil task)", func() error {
			return p.GoReport(context.Background(), nil, func(workerpool.Outcome, error) {})
		}, workerpool.ErrNilTask},
	}
	for _, c := range cases {
		pan, err := a3Call(t, c.name, c.call)
		if pan != nil {
			t.Errorf("%s panicked: %v", c.name, pan)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s = %v, want %v", c.name, err, c.want)
		}
	}
	if ok := p.TryGo(nil); ok {
		t.Error("TryGo(nil) = true")
	}
	// The pool still serves.
	if err := p.Do(a3Ctx(t, a3Hang), noop); err != nil {
		t.Fatalf("Do after the bad calls: %v", err)
	}
}

// TestAttack3GoReportNilReport: GoReport's report is called "exactly once";
// a nil report can never be called, so GoReport must refuse it (an error,
// the task not accepted) rather than accept a task whose outcome then
// panics a worker or is lost. At the least it must not panic nor kill the
// pool.
func TestAttack3GoReportNilReport(t *testing.T) {
	p, _ := atkStart[W](t, "a3nilreport", workerpool.Workers(1))
	ran := make(chan struct{}, 1)
	pan, err := a3Call(t, "GoReport(nil report)", func() error {
		return p.GoReport(context.Background(), func(context.Context, W) error {
			ran <- struct{}{}
			return errors.New("boom")
		}, nil)
	})
	if pan != nil {
		t.Fatalf("GoReport(nil report) panicked in the caller: %v", pan)
	}
	if err == nil {
		// Accepted: then the worker must survive delivering the outcome.
		t.Logf("GoReport(nil report) accepted the task")
	} else if !strings.Contains(err.Error(), "report") && !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("GoReport(nil report) = %v: the error does not name the report", err)
	}
	for i := range 3 {
		if err := p.Do(a3Ctx(t, a3Hang), func(context.Context, W) error { return nil }); err != nil {
			t.Fatalf("Do #%d after GoReport(nil report): %v", i, err)
		}
	}
	if s := p.Stats(); s.Panics != 0 {
		t.Errorf("Stats.Panics = %d after a nil report: the pool panicked on it", s.Panics)
	}
}

// TestAttack3StopNilContextAndBadPolicy: Stop with a nil context, or with a
// policy that is none of Drain, Cancel and DropQueued, returns (an error,
// ideally) and neither panics nor hangs; the app's stop afterwards is clean.
func TestAttack3StopNilContextAndBadPolicy(t *testing.T) {
	t.Run("nil ctx", func(t *testing.T) {
		p, app := atkStart[W](t, "a3stopnil", workerpool.Workers(1))
		var nilCtx context.Context
		pan, err := a3Call(t, "Stop(nil)", func() error { return p.Stop(nilCtx, workerpool.Drain) })
		if pan != nil {
			t.Fatalf("Stop(nil ctx) panicked: %v", pan)
		}
		t.Logf("Stop(nil ctx) = %v", err)
		if err == nil {
			// then it stopped the pool: tasks are refused
			if e := p.Go(context.Background(), func(context.Context, W) error { return nil }); !errors.Is(e, workerpool.ErrClosed) {
				t.Errorf("Stop(nil) returned nil, but Go afterwards = %v", e)
			}
		} else if !errors.Is(err, workerpool.ErrNilContext) {
			t.Errorf("Stop(nil ctx) = %v, want ErrNilContext", err)
		}
		if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
			t.Errorf("app.Stop: %v", err)
		}
	})
	t.Run("bad policy", func(t *testing.T) {
		l := newLedger()
		p, app := atkStart[AB](t, "a3stopbad", workerpool.Workers(2), abResources(l))
		var ran atomic.Int32
		for range 4 {
			if err := p.Go(context.Background(), func(context.Context, AB) error { ran.Add(1); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		pan, err := a3Call(t, "Stop(policy 42)", func() error { return p.Stop(a3Ctx(t, a3Hang), workerpool.StopPolicy(42)) })
		if pan != nil {
			t.Fatalf("Stop(StopPolicy(42)) panicked: %v", pan)
		}
		t.Logf("Stop(StopPolicy(42)) = %v; String = %q", err, workerpool.StopPolicy(42).String())
		if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
			t.Logf("app.Stop: %v", err)
		}
		s := p.Stats()
		if s.Done+s.Dropped != 4 {
			t.Errorf("after Stop(policy 42): Done %d + Dropped %d != 4 accepted", s.Done, s.Dropped)
		}
		l.check(t)
	})
}

// TestAttack3SecondStopHonoursItsOwnBudget: "Stop blocks until the pool has
// stopped or nine tenths of ctx's budget are gone". A Stop made while
// another, without a deadline, waits for a task, must still return by its
// own deadline, not block with the first.
func TestAttack3SecondStopHonoursItsOwnBudget(t *testing.T) {
	p, _ := atkStart[W](t, "a3stop2", workerpool.Workers(1))
	release := make(chan struct{})
	running := make(chan struct{})
	if err := p.Go(context.Background(), func(ctx context.Context, _ W) error {
		close(running)
		<-release // ignores its context
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-running
	first := make(chan error, 1)
	go func() { first <- p.Stop(context.Background(), workerpool.Drain) }()
	// Make sure the first stop is under way: the pool refuses tasks.
	atkPoll(t, "the first stop refuses tasks", a3Hang, func() bool {
		return errors.Is(p.Go(context.Background(), func(context.Context, W) error { return nil }), workerpool.ErrClosed)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- p.Stop(ctx, workerpool.Cancel) }()
	select {
	case err := <-second:
		t.Logf("second Stop = %v", err)
		if err == nil {
			t.Error("second Stop returned nil while a task still held the pool")
		}
	case <-time.After(a3Hang):
		close(release)
		<-first
		t.Fatalf("second Stop with a 300ms budget still blocked after %v (it waits for the first stop, without a deadline)", a3Hang)
	}
	close(release)
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("first Stop = %v", err)
		}
	case <-time.After(a3Hang):
		t.Fatal("first Stop hung after the task returned")
	}
}

// TestAttack3DoOnOwnPoolFromTask: a task that calls Do on its own pool of
// one worker cannot be served until it returns; the pool's stop cancels the
// running task's context at two fifths of its budget, so the inner Do must
// end, the outer task return, and the stop finish, every task accounted for.
func TestAttack3DoOnOwnPoolFromTask(t *testing.T) {
	l := newLedger()
	p, app := atkStart[AB](t, "a3selfdo", workerpool.Workers(1), workerpool.QueueSize(4), abResources(l))
	innerErr := make(chan error, 1)
	innerRan := atomic.Bool{}
	outer := make(chan error, 1)
	go func() {
		outer <- p.Do(context.Background(), func(ctx context.Context, _ AB) error {
			err := p.Do(ctx, func(context.Context, AB) error { innerRan.Store(true); return nil })
			innerErr <- err
			return err
		})
	}()
	atkPoll(t, "the inner task is queued", a3Hang, func() bool { return p.Stats().Queued == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var stopErr error
	within(t, "Stop", func() { stopErr = p.Stop(ctx, workerpool.Drain) })
	t.Logf("Stop = %v", stopErr)
	var ie, oe error
	within(t, "inner Do", func() { ie = <-innerErr })
	within(t, "outer Do", func() { oe = <-outer })
	if innerRan.Load() {
		t.Error("the inner task ran on the only worker while the outer one held it")
	}
	// Either the stop reported the queued inner task (ErrClosed) or it
	// cancelled the outer task's context, the inner Do's (ctx's error).
	if !errors.Is(ie, workerpool.ErrClosed) && !errors.Is(ie, context.Canceled) {
		t.Errorf("inner Do = %v, want ErrClosed or context.Canceled", ie)
	}
	if oe == nil {
		t.Errorf("outer Do = nil, want the inner's error")
	}
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Logf("app.Stop: %v", err)
	}
	s := p.Stats()
	if s.Done+s.Dropped != 2 {
		t.Errorf("Done %d + Dropped %d, want 2 accepted tasks", s.Done, s.Dropped)
	}
	if s.Queued != 0 || s.Busy != 0 || s.Workers != 0 {
		t.Errorf("after the stop: %+v", s)
	}
	l.check(t)
}

// TestAttack3StopFromInsideTask: a task that stops its own pool. The stop
// cannot finish while that very task runs, so it must return by nine tenths
// of its budget with an error naming the worker; the task then returns, its
// worker closes its resources, exactly once, and the app's stop returns the
// same kind of result without hanging.
func TestAttack3StopFromInsideTask(t *testing.T) {
	l := newLedger()
	p, app := atkStart[AB](t, "a3selfstop", workerpool.Workers(2), abResources(l))
	stopErr := make(chan error, 1)
	err := p.Do(a3Ctx(t, a3Hang), func(ctx context.Context, _ AB) error {
		sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		stopErr <- p.Stop(sctx, workerpool.DropQueued)
		return nil
	})
	if err != nil {
		t.Errorf("the task that stopped its pool: Do = %v", err)
	}
	se := <-stopErr
	t.Logf("Stop from a task = %v", se)
	if se == nil {
		t.Error("Stop from inside a task returned nil, though the task still ran on its worker")
	} else if !strings.Contains(se.Error(), "a3selfstop") {
		t.Errorf("Stop's error does not name the pool: %v", se)
	}
	within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
	atkPoll(t, "every opened resource closes", a3Hang, func() bool { o, c := l.counts(); return o == c })
	l.check(t)
	if err := p.Go(context.Background(), func(context.Context, AB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after the stop = %v, want ErrClosed", err)
	}
}

// TestAttack3ResizeFromTasks: Resize "does not wait", so tasks may resize
// their own pool, up and down, concurrently, while others run; every
// worker generation that opened closes exactly once, in reverse order.
func TestAttack3ResizeFromTasks(t *testing.T) {
	l := newLedger()
	p, app := atkStart[AB](t, "a3resizetask", workerpool.Workers(2), workerpool.QueueSize(64), abResources(l))
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Do(context.Background(), func(ctx context.Context, _ AB) error {
				n := 1 + i%4
				if err := p.Resize(n); err != nil && !errors.Is(err, workerpool.ErrClosed) {
					return fmt.Errorf("Resize(%d): %w", n, err)
				}
				return nil
			})
		}()
	}
	within(t, "the resizing tasks", wg.Wait)
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "3 workers serve", a3Hang, func() bool { return p.Stats().Workers == 3 })
	if c := p.Capacity(); c.Workers != 3 || c.MaxWorkers != 3 {
		t.Errorf("Capacity after Resize(3) = %+v", c)
	}
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Errorf("app.Stop: %v", err)
	}
	if s := p.Stats(); s.Done != 40 {
		t.Errorf("Done = %d, want 40", s.Done)
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity.Workers = %d after stop, want 0", c.Workers)
	}
	l.check(t)
}

// TestAttack3ReentrantEvents: the Events hook calls back into its own pool
// (Stats, Capacity, TryGo, Resize) on every event, from whatever goroutine
// the event happens on; the pool's state changes "under one lock", which
// must not be held while the hook runs: no deadlock, in the start, the
// recycles or the stop, and every resource still closes exactly once.
func TestAttack3ReentrantEvents(t *testing.T) {
	var pp atomic.Pointer[workerpool.Pool[AB]]
	var events atomic.Int64
	l := newLedger()
	var p *workerpool.Pool[AB]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[AB]("a3reent",
			workerpool.Workers(2), workerpool.QueueSize(2), abResources(l),
			workerpool.MaxTasksPerWorker(3),
			workerpool.Events(func(e workerpool.Event) {
				events.Add(1)
				if p := pp.Load(); p != nil {
					_ = p.Stats()
					_ = p.Capacity()
					_ = p.TryGo(func(context.Context, AB) error { return nil })
					_ = p.Resize(2)
				}
			}),
		),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	pp.Store(p)
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 30 {
				err := p.Do(context.Background(), func(ctx context.Context, _ AB) error {
					if j%5 == 0 {
						return fmt.Errorf("task %d/%d: %w", i, j, resources.ErrBroken)
					}
					return nil
				})
				if err != nil && !errors.Is(err, resources.ErrBroken) {
					t.Errorf("Do = %v", err)
					return
				}
			}
		}()
	}
	within(t, "submitters", wg.Wait)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stopErr error
	within(t, "app.Stop with a reentrant Events hook", func() { stopErr = app.Stop(ctx) })
	if stopErr != nil {
		t.Errorf("app.Stop: %v", stopErr)
	}
	if events.Load() == 0 {
		t.Error("the Events hook never ran")
	}
	l.check(t)
}

// TestAttack3ErrorHandlerRetriesOnItsPool: an ErrorHandler that resubmits a
// failed task with Go blocks while the queue is full, on the worker's
// goroutine: every worker can end up blocked in the handler. Go "blocks only
// while the queue is full, until there is room, the pool stops (ErrClosed)":
// so the pool's stop must free them, and finish, and OnDropped, which
// resubmits too, gets ErrClosed.
func TestAttack3ErrorHandlerRetriesOnItsPool(t *testing.T) {
	var pp atomic.Pointer[workerpool.Pool[AB]]
	var handled, dropped, resubmitted atomic.Int64
	l := newLedger()
	var p *workerpool.Pool[AB]
	fail := func(context.Context, AB) error { return errors.New("fails") }
	app := fx.New(fx.NopLogger,
		workerpool.Provide[AB]("a3handler",
			workerpool.Workers(2), workerpool.QueueSize(2), abResources(l),
			workerpool.ErrorHandler(func(err error) {
				handled.Add(1)
				if errors.Is(err, workerpool.ErrClosed) {
					return
				}
				if p := pp.Load(); p != nil {
					if p.Go(context.Background(), fail) == nil {
						resubmitted.Add(1)
					}
				}
			}),
			workerpool.OnDropped(func(ctx context.Context, task func(context.Context, AB) error) {
				dropped.Add(1)
				if p := pp.Load(); p != nil {
					if err := p.Go(ctx, task); !errors.Is(err, workerpool.ErrClosed) {
						panic(fmt.Sprintf("resubmission from OnDropped = %v, want ErrClosed", err))
					}
				}
			}),
		),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	pp.Store(p)
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	for range 4 {
		if err := p.Go(context.Background(), fail); err != nil {
			t.Fatal(err)
		}
		accepted.Add(1)
	}
	// Both workers end up in the handler, blocked in Go on the full queue.
	atkPoll(t, "the handlers block", a3Hang, func() bool { return handled.Load() >= 2 && p.Stats().Queued == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var stopErr error
	within(t, "app.Stop while handlers block in Go", func() { stopErr = app.Stop(ctx) })
	t.Logf("app.Stop = %v; handled %d, resubmitted %d, dropped %d", stopErr, handled.Load(), resubmitted.Load(), dropped.Load())
	s := p.Stats()
	if want := uint64(accepted.Load() + resubmitted.Load()); s.Done+s.Dropped != want {
		t.Errorf("Done %d + Dropped %d != %d accepted", s.Done, s.Dropped, want)
	}
	if s.Dropped != uint64(dropped.Load()) {
		t.Errorf("Stats.Dropped %d != OnDropped calls %d", s.Dropped, dropped.Load())
	}
	l.check(t)
}

// TestAttack3OutcomeOfTaskReturningErrClosed: a task that ran and returned
// ErrClosed itself (say, from another pool) ran: GoReport reports Failed,
// not NotRun, and Stats counts it as done, not dropped.
func TestAttack3OutcomeOfTaskReturningErrClosed(t *testing.T) {
	p, app := atkStart[W](t, "a3ownclosed", workerpool.Workers(1))
	got := make(chan workerpool.Outcome, 1)
	if err := p.GoReport(context.Background(), func(context.Context, W) error {
		return fmt.Errorf("downstream: %w", workerpool.ErrClosed)
	}, func(o workerpool.Outcome, err error) { got <- o }); err != nil {
		t.Fatal(err)
	}
	var o workerpool.Outcome
	within(t, "report", func() { o = <-got })
	if o != workerpool.Failed {
		t.Errorf("outcome = %v, want Failed: the task ran", o)
	}
	if err := p.Do(context.Background(), func(context.Context, W) error { return workerpool.ErrClosed }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v", err)
	}
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Done != 2 || s.Failed != 2 || s.Dropped != 0 {
		t.Errorf("Stats = %+v, want Done 2, Failed 2, Dropped 0", s)
	}
}

// TestAttack3PanicNilAndGoexitEverywhere: panic(nil) is a panic
// (*runtime.PanicNilError since Go 1.21), and Goexit is ErrGoexit, through
// every submission API; the worker rebuilds and serves.
func TestAttack3PanicNilAndGoexitEverywhere(t *testing.T) {
	l := newLedger()
	p, app := atkStart[AB](t, "a3panicnil", workerpool.Workers(1), abResources(l))
	panicNil := func(context.Context, AB) error { panic(nil) }
	goexit := func(context.Context, AB) error { runtime.Goexit(); return nil }
	for name, task := range map[string]func(context.Context, AB) error{"panic(nil)": panicNil, "Goexit": goexit} {
		err := p.Do(a3Ctx(t, a3Hang), task)
		if name == "Goexit" {
			if !errors.Is(err, workerpool.ErrGoexit) {
				t.Errorf("Do(%s) = %v", name, err)
			}
		} else {
			var pe *workerpool.PanicError
			var pn *runtime.PanicNilError
			if !errors.As(err, &pe) {
				t.Errorf("Do(%s) = %v (%T), want a *PanicError", name, err, err)
			} else if !errors.As(err, &pn) {
				t.Logf("Do(panic(nil)): PanicError %v does not unwrap to *runtime.PanicNilError", err)
			}
		}
		f, err := workerpool.Submit(a3Ctx(t, a3Hang), p, func(ctx context.Context, d AB) (int, error) { return 7, task(ctx, d) })
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Wait(a3Ctx(t, a3Hang))
		if err == nil || v != 0 {
			t.Errorf("Submit(%s): Wait = %v, %v", name, v, err)
		}
		rep := make(chan workerpool.Outcome, 2)
		if err := p.GoReport(context.Background(), task, func(o workerpool.Outcome, err error) { rep <- o }); err != nil {
			t.Fatal(err)
		}
		within(t, "report", func() {
			if o := <-rep; o != workerpool.Panicked {
				t.Errorf("GoReport(%s) outcome = %v, want Panicked", name, o)
			}
		})
		g, _ := p.Group(a3Ctx(t, a3Hang))
		g.Go(task)
		within(t, "Group.Wait", func() {
			if err := g.Wait(); err == nil {
				t.Errorf("Group with %s: Wait = nil", name)
			}
		})
	}
	if err := p.Do(a3Ctx(t, a3Hang), func(context.Context, AB) error { return nil }); err != nil {
		t.Errorf("Do after the panics: %v", err)
	}
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	if s.Panics != 8 || s.Restarts != 8 || s.Done != 9 {
		t.Errorf("Stats = %+v, want Panics 8, Restarts 8, Done 9", s)
	}
	l.check(t)
}

// TestAttack3FutureWaitConcurrent: many goroutines wait on one future, some
// with contexts that end first and wait again; all get the one result.
func TestAttack3FutureWaitConcurrent(t *testing.T) {
	p, _ := atkStart[W](t, "a3future", workerpool.Workers(1))
	release := make(chan struct{})
	f, err := workerpool.Submit(context.Background(), p, func(context.Context, W) (string, error) {
		<-release
		return "v", errors.New("e")
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var early, bad atomic.Int32
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				_, err := f.Wait(ctx)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					early.Add(1)
				}
			}
			v, err := f.Wait(context.Background())
			if v != "v" || err == nil || err.Error() != "e" {
				bad.Add(1)
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	within(t, "waiters", wg.Wait)
	if bad.Load() != 0 {
		t.Errorf("%d waiters got another result", bad.Load())
	}
	select {
	case <-f.Done():
	default:
		t.Error("Done not closed after Wait returned")
	}
	var nilCtx context.Context
	pan, _ := a3Call(t, "Wait(nil)", func() error { _, err := f.Wait(nilCtx); return err })
	if pan != nil {
		t.Errorf("Future.Wait(nil ctx) on a ready future panicked: %v", pan)
	}
}
