package workerpool_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

type ctxKey struct{}

// within fails the test if f has not returned after a generous bound: it
// detects hangs, it does not time anything.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still running after 10s", what)
	}
}

func TestTaskContext(t *testing.T) {
	t.Run("DoCarriesValuesAndCancellation", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		ctx, cancel := context.WithCancelCause(context.WithValue(t.Context(), ctxKey{}, "span-7"))
		why := errors.New("client went away")
		var got any
		err := p.Do(ctx, func(ctx context.Context, _ resources.Worker) error {
			got = ctx.Value(ctxKey{})
			cancel(why)
			<-ctx.Done()
			return context.Cause(ctx)
		})
		if got != "span-7" {
			t.Errorf("task saw value %v, want span-7", got)
		}
		if !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
			t.Errorf("Do() = %v, want the submitter's cause", err)
		}
	})
	t.Run("DoTaskSeesCauseOfSubmitter", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		ctx, cancel := context.WithCancelCause(t.Context())
		why := errors.New("request timed out")
		f, err := workerpool.Submit(ctx, p, func(ctx context.Context, _ resources.Worker) (error, error) {
			cancel(why)
			<-ctx.Done()
			return context.Cause(ctx), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		cause, _ := f.Wait(t.Context())
		if !errors.Is(cause, why) {
			t.Errorf("task's context cause = %v, want the submitter's %v", cause, why)
		}
	})
	t.Run("GoCarriesValuesNotCancellation", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		ctx, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "req-1"))
		seen := make(chan any, 1)
		alive := make(chan error, 1)
		if err := p.Go(ctx, func(ctx context.Context, _ resources.Worker) error {
			seen <- ctx.Value(ctxKey{})
			cancel() // the submitter's request ends: the task goes on
			alive <- ctx.Err()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if v := <-seen; v != "req-1" {
			t.Errorf("Go task saw %v, want req-1", v)
		}
		if err := <-alive; err != nil {
			t.Errorf("Go task's context ended with its submitter's: %v", err)
		}
	})
	t.Run("StopCancelsWithErrClosed", func(t *testing.T) {
		for _, submit := range []string{"Go", "Do"} {
			t.Run(submit, func(t *testing.T) {
				p, app := start[resources.Worker](t, workerpool.Workers(1), workerpool.OnStop(workerpool.Cancel))
				cause := make(chan error, 1)
				running := make(chan struct{})
				task := func(ctx context.Context, _ resources.Worker) error {
					close(running)
					<-ctx.Done()
					cause <- context.Cause(ctx)
					return nil
				}
				ctx := context.WithValue(t.Context(), ctxKey{}, 1)
				if submit == "Go" {
					if err := p.Go(ctx, task); err != nil {
						t.Fatal(err)
					}
				} else {
					go func() { _ = p.Do(ctx, task) }()
				}
				<-running
				app.RequireStop()
				if err := <-cause; !errors.Is(err, workerpool.ErrClosed) {
					t.Errorf("cause = %v, want ErrClosed", err)
				}
			})
		}
	})
	t.Run("DoWhoseContextEndedDoesNotRun", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1), workerpool.QueueSize(1))
		release := make(chan struct{})
		if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { <-release; return nil }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var ran atomic.Bool
		f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (int, error) { ran.Store(true); return 1, nil })
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		close(release)
		if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait() = %v, want the submitter's context.Canceled", err)
		}
		if ran.Load() {
			t.Error("the task ran though its submitter had given up on it")
		}
	})
	t.Run("NilContextIsAnError", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		nop := func(context.Context, resources.Worker) error { return nil }
		//lint:ignore SA1012 a nil context is the point
		if err := p.Do(nil, nop); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
			t.Errorf("Do(nil) = %v", err)
		}
		//lint:ignore SA1012 a nil context is the point
		if err := p.Go(nil, nop); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
			t.Errorf("Go(nil) = %v", err)
		}
	})
}

func TestGroup(t *testing.T) {
	t.Run("FirstErrorCancelsTheOthers", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(4))
		g, gctx := p.Group(t.Context())
		boom := errors.New("boom")
		var wrong atomic.Int32
		for range 3 {
			// Each either runs and sees the group cancelled by boom, or
			// never runs: the group ended before a worker took it.
			g.Go(func(ctx context.Context, _ resources.Worker) error {
				<-ctx.Done()
				if !errors.Is(context.Cause(ctx), boom) {
					wrong.Add(1)
				}
				return ctx.Err()
			})
		}
		g.Go(func(context.Context, resources.Worker) error { return boom })
		if err := g.Wait(); !errors.Is(err, boom) {
			t.Errorf("Wait() = %v, want the first error", err)
		}
		if n := wrong.Load(); n != 0 {
			t.Errorf("%d tasks saw their context end with another cause than boom", n)
		}
		if gctx.Err() == nil {
			t.Error("the group's context is not done after Wait")
		}
	})
	t.Run("PanicIsAnError", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(2))
		g, _ := p.Group(t.Context())
		g.Go(func(context.Context, resources.Worker) error { panic("kaput") })
		var pe *workerpool.PanicError
		if err := g.Wait(); !errors.As(err, &pe) || pe.Value != "kaput" {
			t.Errorf("Wait() = %v, want the panic", err)
		}
	})
	t.Run("AllSucceed", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(2), workerpool.QueueSize(1))
		g, _ := p.Group(t.Context())
		var n atomic.Int32
		for range 100 {
			g.Go(func(context.Context, resources.Worker) error { n.Add(1); return nil })
		}
		if err := g.Wait(); err != nil || n.Load() != 100 {
			t.Errorf("Wait() = %v after %d tasks, want nil after 100", err, n.Load())
		}
	})
	t.Run("HonoursItsContext", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1), workerpool.QueueSize(1))
		ctx, cancel := context.WithCancel(t.Context())
		g, _ := p.Group(ctx)
		g.Go(func(ctx context.Context, _ resources.Worker) error { <-ctx.Done(); return nil })
		cancel()
		g.Go(func(context.Context, resources.Worker) error { return nil })
		within(t, "Wait", func() {
			if err := g.Wait(); !errors.Is(err, context.Canceled) {
				t.Errorf("Wait() = %v, want context.Canceled", err)
			}
		})
	})
	t.Run("NoGoroutinePerTask", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1), workerpool.QueueSize(1000))
		release := make(chan struct{})
		g, _ := p.Group(t.Context())
		before := runtime.NumGoroutine()
		for range 1000 {
			g.Go(func(context.Context, resources.Worker) error { <-release; return nil })
		}
		if after := runtime.NumGoroutine(); after > before+10 {
			t.Errorf("%d goroutines after 1000 queued tasks, %d before: one per task?", after, before)
		}
		close(release)
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
	t.Run("ClosedPoolFailsTheGroup", func(t *testing.T) {
		p, app := start[resources.Worker](t, workerpool.Workers(1))
		app.RequireStop()
		g, _ := p.Group(t.Context())
		g.Go(func(context.Context, resources.Worker) error { return nil })
		if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Wait() = %v, want ErrClosed", err)
		}
	})
}

func TestGoReport(t *testing.T) {
	type report struct {
		o   workerpool.Outcome
		err error
	}
	collect := func() (func(workerpool.Outcome, error), func() []report) {
		var (
			mu  sync.Mutex
			all []report
		)
		return func(o workerpool.Outcome, err error) {
				mu.Lock()
				all = append(all, report{o, err})
				mu.Unlock()
			}, func() []report {
				mu.Lock()
				defer mu.Unlock()
				return append([]report(nil), all...)
			}
	}
	t.Run("EachOutcomeOnce", func(t *testing.T) {
		var handled atomic.Int32
		p, _ := start[resources.Worker](t, workerpool.Workers(1),
			workerpool.ErrorHandler(func(error) { handled.Add(1) }))
		boom := errors.New("boom")
		tasks := []struct {
			give func(context.Context, resources.Worker) error
			want workerpool.Outcome
		}{
			{func(context.Context, resources.Worker) error { return nil }, workerpool.Succeeded},
			{func(context.Context, resources.Worker) error { return boom }, workerpool.Failed},
			{func(context.Context, resources.Worker) error { panic("p") }, workerpool.Panicked},
			{func(context.Context, resources.Worker) error { runtime.Goexit(); return nil }, workerpool.Panicked},
		}
		for _, tt := range tasks {
			report, got := collect()
			done := make(chan struct{})
			if err := p.GoReport(t.Context(), tt.give, func(o workerpool.Outcome, err error) { report(o, err); close(done) }); err != nil {
				t.Fatal(err)
			}
			within(t, "report", func() { <-done })
			if r := got(); len(r) != 1 || r[0].o != tt.want {
				t.Errorf("reports %v, want one %v", r, tt.want)
			}
		}
		if n := handled.Load(); n != 0 {
			t.Errorf("ErrorHandler saw %d errors of reported tasks, want 0", n)
		}
	})
	t.Run("NotRunAtStop", func(t *testing.T) {
		p, app := start[resources.Worker](t, workerpool.Workers(1), workerpool.OnStop(workerpool.Cancel))
		release := make(chan struct{})
		running := make(chan struct{})
		if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { close(running); <-release; return nil }); err != nil {
			t.Fatal(err)
		}
		<-running
		report, got := collect()
		if err := p.GoReport(t.Context(), func(context.Context, resources.Worker) error { return nil }, report); err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(10 * time.Millisecond); close(release) }()
		app.RequireStop()
		if r := got(); len(r) != 1 || r[0].o != workerpool.NotRun || !errors.Is(r[0].err, workerpool.ErrClosed) {
			t.Errorf("reports %v, want one NotRun with ErrClosed", r)
		}
	})
}

func TestOnDroppedIdentifiesAndNeverRacesTheFuture(t *testing.T) {
	var (
		p       *workerpool.Pool[resources.Worker]
		ids     = make(chan any, 10)
		reruns  sync.WaitGroup
		release = make(chan struct{})
	)
	app := fxtest.New(t,
		workerpool.Provide[resources.Worker]("dropper",
			workerpool.Workers(1),
			workerpool.OnStop(workerpool.Cancel),
			workerpool.OnDropped(func(ctx context.Context, task func(context.Context, resources.Worker) error) {
				ids <- ctx.Value(ctxKey{})
				reruns.Add(1)
				go func() { // hand it elsewhere, as the doc suggests
					defer reruns.Done()
					_ = task(context.Background(), resources.Worker{})
				}()
			}),
		),
		fx.Populate(&p),
	)
	app.RequireStart()
	running := make(chan struct{})
	if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { close(running); <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	<-running
	ctx := context.WithValue(t.Context(), ctxKey{}, "msg-42")
	f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (int, error) { return 42, nil })
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	var (
		v    int
		werr error
	)
	go func() { defer close(waited); v, werr = f.Wait(context.Background()) }()
	go func() { time.Sleep(10 * time.Millisecond); close(release) }()
	app.RequireStop()
	<-waited
	reruns.Wait()
	if id := <-ids; id != "msg-42" {
		t.Errorf("OnDropped saw %v, want the submitter's msg-42", id)
	}
	if v != 0 || !errors.Is(werr, workerpool.ErrClosed) {
		t.Errorf("Wait() = %d, %v; want 0, ErrClosed: the re-run must not change what the submitter was told", v, werr)
	}
}

func TestAddFeeder(t *testing.T) {
	p, app := start[resources.Worker](t, workerpool.Workers(1))
	var (
		lastErr  error
		deadline time.Duration
	)
	err := p.AddFeeder(func(ctx context.Context) error {
		// The pool still takes the feeder's last tasks.
		lastErr = p.Do(ctx, func(context.Context, resources.Worker) error { return nil })
		dl, _ := ctx.Deadline()
		deadline = time.Until(dl)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if lastErr != nil {
		t.Errorf("the feeder's last task: %v, want it run", lastErr)
	}
	if deadline <= 0 || deadline > 400*time.Millisecond {
		t.Errorf("the feeder had %v left, want at most two fifths of the 1s budget", deadline)
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after stop = %v, want ErrClosed", err)
	}
}

func TestCapacity(t *testing.T) {
	p, _ := start[resources.Worker](t, workerpool.Workers(3), workerpool.QueueSize(5))
	if c := p.Capacity(); c.Workers != 3 || c.MaxWorkers != 3 || c.Queue != 5 || c.InFlight() != 8 {
		t.Errorf("Capacity() = %+v", c)
	}
	e, _ := start[resources.Worker](t, workerpool.Elastic(0, 4, time.Hour), workerpool.QueueSize(2))
	if c := e.Capacity(); c.Workers != 0 || c.MaxWorkers != 4 || c.Queue != 2 || c.InFlight() != 6 {
		t.Errorf("elastic Capacity() = %+v", c)
	}
}

func TestStopDropQueued(t *testing.T) {
	p, app := start[resources.Worker](t, workerpool.Workers(1))
	release := make(chan struct{})
	running := make(chan struct{})
	finished := make(chan error, 1)
	if err := p.Go(t.Context(), func(ctx context.Context, _ resources.Worker) error {
		close(running)
		<-release
		finished <- ctx.Err()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-running
	queued, err := workerpool.Submit(t.Context(), p, func(context.Context, resources.Worker) (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(context.Background(), workerpool.DropQueued) }()
	if _, err := queued.Wait(t.Context()); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("the queued task: %v, want ErrClosed", err)
	}
	close(release)
	if err := <-finished; err != nil {
		t.Errorf("the running task's context ended (%v): DropQueued lets it finish", err)
	}
	if err := <-stopped; err != nil {
		t.Error(err)
	}
	app.RequireStop() // the OnStop hook waits for the stop under way
}

func TestResize(t *testing.T) {
	var opened, closed atomic.Int32
	type Res struct{ w resources.Worker }
	p, app := start[*Res](t, workerpool.Workers(2), workerpool.Resources(resources.PerWorker(
		func(w resources.Worker) (*Res, func(), error) {
			opened.Add(1)
			return &Res{w}, func() { closed.Add(1) }, nil
		})))
	waitWorkers := func(n int) {
		t.Helper()
		within(t, "resize", func() {
			for p.Stats().Workers != n || p.Capacity().Workers != n {
				runtime.Gosched()
			}
		})
	}
	if err := p.Resize(5); err != nil {
		t.Fatal(err)
	}
	waitWorkers(5)
	// Every worker serves: five tasks that wait for each other all run.
	var all sync.WaitGroup
	all.Add(5)
	g, _ := p.Group(t.Context())
	for range 5 {
		g.Go(func(context.Context, *Res) error { all.Done(); all.Wait(); return nil })
	}
	within(t, "five tasks on five workers", func() { _ = g.Wait() })
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	within(t, "shrink", func() {
		for closed.Load() != 4 {
			runtime.Gosched()
		}
	})
	waitWorkers(1)
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	waitWorkers(3)
	app.RequireStop()
	if o, c := opened.Load(), closed.Load(); o != 7 || c != 7 {
		t.Errorf("%d opened, %d closed; want 7 and 7: each resource closed exactly once", o, c)
	}
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize after stop = %v, want ErrClosed", err)
	}
	if err := p.Resize(0); err == nil {
		t.Error("Resize(0) = nil")
	}
}

func TestMapV2(t *testing.T) {
	seq := func(n int) func(func(int) bool) {
		return func(yield func(int) bool) {
			for i := range n {
				if !yield(i) {
					return
				}
			}
		}
	}
	t.Run("NilFunc", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		for _, err := range workerpool.Map[resources.Worker, int, int](t.Context(), p, seq(3), nil) {
			if !errors.Is(err, workerpool.ErrNilTask) {
				t.Errorf("Map(nil f) yields %v, want ErrNilTask", err)
			}
		}
		if s := p.Stats(); s.Panics != 0 || s.Restarts != 0 {
			t.Errorf("Stats() = %+v: a nil f reached the workers", s)
		}
	})
	t.Run("NestedOnItsOwnPoolReturnsAtItsDeadline", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		err := p.Do(t.Context(), func(ctx context.Context, _ resources.Worker) error {
			ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			for _, err := range workerpool.Map(ctx, p, seq(2), func(context.Context, resources.Worker, int) (int, error) { return 0, nil }) {
				if err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a Map that can never run = %v, want its deadline", err)
		}
	})
	t.Run("PanicInTheBodyLeavesNothingRunning", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(2))
		var running atomic.Int32
		func() {
			defer func() { _ = recover() }()
			for range workerpool.Map(t.Context(), p, seq(100), func(ctx context.Context, _ resources.Worker, x int) (int, error) {
				running.Add(1)
				defer running.Add(-1)
				select {
				case <-ctx.Done():
				case <-time.After(time.Millisecond):
				}
				return x, nil
			}) {
				panic("the loop's body")
			}
		}()
		if n := running.Load(); n != 0 {
			t.Errorf("%d tasks of f still running after the loop panicked", n)
		}
	})
}

func TestCallbacksThatMisbehave(t *testing.T) {
	t.Run("PanicInAReport", func(t *testing.T) {
		p, _ := start[resources.Worker](t, workerpool.Workers(1))
		if err := p.GoReport(t.Context(), func(context.Context, resources.Worker) error { return nil },
			func(workerpool.Outcome, error) { panic("the feeder's bug") }); err != nil {
			t.Fatal(err)
		}
		// The worker survived: it runs the next task.
		if err := p.Do(t.Context(), func(context.Context, resources.Worker) error { return nil }); err != nil {
			t.Errorf("Do after a panicking report = %v", err)
		}
	})
	t.Run("GoexitInTheErrorHandlerClosesTheResourcesOnce", func(t *testing.T) {
		var opened, closed atomic.Int32
		type Res struct{}
		p, app := start[*Res](t,
			workerpool.Workers(1),
			workerpool.RestartBackoff(time.Millisecond, time.Millisecond),
			workerpool.ErrorHandler(func(error) { runtime.Goexit() }),
			workerpool.Resources(resources.PerWorker(func() (*Res, func(), error) {
				opened.Add(1)
				return &Res{}, func() { closed.Add(1) }, nil
			})),
		)
		if err := p.Go(t.Context(), func(context.Context, *Res) error { return errors.New("to the handler") }); err != nil {
			t.Fatal(err)
		}
		within(t, "the worker after a Goexit in its ErrorHandler", func() {
			if err := p.Do(t.Context(), func(context.Context, *Res) error { return nil }); err != nil {
				t.Errorf("Do = %v", err)
			}
		})
		app.RequireStop()
		if o, c := opened.Load(), closed.Load(); o != 2 || c != 2 {
			t.Errorf("%d opened, %d closed; want 2 and 2: the resources of the Goexit's worker closed once, then reopened", o, c)
		}
	})
}
