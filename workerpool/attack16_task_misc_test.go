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
	"go.uber.org/fx"
)

// Past MaxRestarts the pool fails: queued tasks are reported not run with
// ErrClosed (OnDropped sees each), new ones are refused, and fx is asked to
// stop the app with exit code 1.
func TestA16tMaxRestartsFailsAndReportsQueued(t *testing.T) {
	var dropped a16tDropped
	var errs a16tErrs
	p, app := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(8),
		workerpool.MaxRestarts(1, time.Hour), workerpool.RestartBackoff(time.Millisecond, time.Millisecond),
		dropped.option(), workerpool.ErrorHandler(errs.handle))
	b := a16tOccupy(t, p, 1)
	for range 2 {
		if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { panic("a16t") }); err != nil {
			t.Fatal(err)
		}
	}
	reps := make(chan workerpool.Outcome, 3)
	repErrs := make(chan error, 3)
	var ran atomic.Int32
	for i := range 3 {
		if err := p.GoReport(context.WithValue(context.Background(), a16tKey{}, i), func(context.Context, resources.Worker) error {
			ran.Add(1)
			return nil
		}, func(o workerpool.Outcome, err error) { reps <- o; repErrs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	doErr := make(chan error, 1)
	go func() {
		doErr <- p.Do(context.WithValue(context.Background(), a16tKey{}, "do"), func(context.Context, resources.Worker) error {
			ran.Add(1)
			return nil
		})
	}()
	a16tEventually(t, "all queued", func() bool { return p.Stats().Queued == 6 })
	b.open()
	sig := a16tRecv(t, app.Wait(), "fx asked to stop")
	if sig.ExitCode != 1 {
		t.Errorf("exit code %d, want 1", sig.ExitCode)
	}
	for range 3 {
		o := a16tRecv(t, reps, "report")
		err := <-repErrs
		if o != workerpool.NotRun || !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("report %v %v, want NotRun ErrClosed", o, err)
		}
	}
	if err := a16tRecv(t, doErr, "Do"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v, want ErrClosed", err)
	}
	if p.Serving() {
		t.Error("Serving after failing")
	}
	if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go on a failed pool = %v", err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued tasks ran on a failed pool", ran.Load())
	}
	if n := dropped.n.Load(); n != 4 {
		t.Errorf("OnDropped saw %d, want 4", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	_ = app.Stop(ctx)
	st := p.Stats()
	if st.Done != 3 || st.Dropped != 4 || st.Panics != 2 {
		t.Errorf("Stats Done=%d Dropped=%d Panics=%d, want 3 4 2", st.Done, st.Dropped, st.Panics)
	}
}

// A Drain whose budget runs out while a task ignores its context: queued
// tasks are reported not run, Stop names the stuck worker, and when the
// task comes back it is reported (ran) exactly once and the worker ends.
func TestA16tDrainBudgetRunsOutStuckTask(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4), dropped.option())
	release := make(chan struct{})
	in := make(chan struct{})
	stuckRep := make(chan workerpool.Outcome, 2)
	if err := p.GoReport(context.Background(), func(context.Context, resources.Worker) error {
		close(in)
		<-release // ignores its context
		return nil
	}, func(o workerpool.Outcome, err error) { stuckRep <- o }); err != nil {
		t.Fatal(err)
	}
	a16tRecv(t, in, "stuck task")
	queuedRep := make(chan workerpool.Outcome, 4)
	queuedErr := make(chan error, 4)
	for i := range 2 {
		if err := p.GoReport(context.WithValue(context.Background(), a16tKey{}, i), func(context.Context, resources.Worker) error { return nil },
			func(o workerpool.Outcome, err error) { queuedRep <- o; queuedErr <- err }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	err := p.Stop(ctx, workerpool.Drain)
	if err == nil {
		t.Error("Stop with a stuck task returned nil")
	} else if !strings.Contains(err.Error(), "a16t") {
		t.Errorf("Stop's error does not name the pool: %v", err)
	}
	for range 2 {
		o := a16tRecv(t, queuedRep, "queued report")
		if e := <-queuedErr; o != workerpool.NotRun || !errors.Is(e, workerpool.ErrClosed) {
			t.Errorf("queued: %v %v", o, e)
		}
	}
	if dropped.n.Load() != 2 {
		t.Errorf("OnDropped %d, want 2", dropped.n.Load())
	}
	close(release)
	if o := a16tRecv(t, stuckRep, "stuck task's report"); o != workerpool.Succeeded {
		t.Errorf("stuck task reported %v", o)
	}
	a16tEventually(t, "the stuck task counted", func() bool { return p.Stats().Done == 1 })
	if st := p.Stats(); st.Dropped != 2 {
		t.Errorf("Dropped %d", st.Dropped)
	}
	select {
	case o := <-stuckRep:
		t.Errorf("stuck task reported twice: %v", o)
	default:
	}
}

// Panics in report, ErrorHandler and OnDropped are logged; the worker goes
// on and each callback still runs once per task.
func TestA16tCallbackPanicsDoNotStopTheWorker(t *testing.T) {
	var handled, droppedN atomic.Int32
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4),
		workerpool.ErrorHandler(func(error) { handled.Add(1); panic("a16t handler") }),
		workerpool.OnDropped[resources.Worker](func(context.Context, func(context.Context, resources.Worker) error) {
			droppedN.Add(1)
			panic("a16t dropped")
		}))
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	var reported atomic.Int32
	for range 3 {
		if err := p.GoReport(ctx, func(context.Context, resources.Worker) error { return nil },
			func(workerpool.Outcome, error) { reported.Add(1); panic("a16t report") }); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := p.Go(ctx, func(context.Context, resources.Worker) error { return errors.New("x") }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Do(ctx, func(context.Context, resources.Worker) error { return nil }); err != nil {
		t.Fatalf("Do after panicking callbacks: %v", err)
	}
	a16tEventually(t, "handlers", func() bool { return handled.Load() == 3 })
	if reported.Load() != 3 {
		t.Errorf("reported %d, want 3", reported.Load())
	}
	b := a16tOccupy(t, p, 1)
	for range 2 {
		if !p.TryGo(func(context.Context, resources.Worker) error { return nil }) {
			t.Fatal("TryGo refused")
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.Cancel) }()
	a16tEventually(t, "refusal", func() bool { return !p.Serving() })
	b.open()
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	if droppedN.Load() != 2 || handled.Load() != 5 {
		t.Errorf("OnDropped %d (want 2), ErrorHandler %d (want 3 errors + 2 ErrClosed)", droppedN.Load(), handled.Load())
	}
	if st := p.Stats(); st.Restarts != 0 {
		t.Errorf("callback panics restarted the worker: %d", st.Restarts)
	}
}

// Counters settle: after a burst of Go tasks, Done reaches the count once
// the worker waits, Busy and Queued go back to 0; Failed/Panics exact.
func TestA16tStatsSettleAfterGoBurst(t *testing.T) {
	var errs a16tErrs
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(16), workerpool.ErrorHandler(errs.handle))
	const n = 1000
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		if err := p.Go(context.Background(), func(context.Context, resources.Worker) error {
			defer wg.Done()
			if i%10 == 0 {
				return errors.New("x")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	a16tEventually(t, "counters to settle", func() bool {
		st := p.Stats()
		return st.Done == n && st.Busy == 0 && st.Queued == 0
	})
	if st := p.Stats(); st.Failed != n/10 || st.Panics != 0 || st.Workers != 2 || st.Dropped != 0 {
		t.Errorf("Stats %+v", st)
	}
	a16tEventually(t, "handler", func() bool { return len(errs.all()) == n/10 })
}

// Group methods are safe for concurrent use: Go from many goroutines while
// two goroutines Wait; both Waits return the same, first error.
func TestA16tGroupConcurrentGoAndWait(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(4))
	g, _ := p.Group(context.Background())
	first := errors.New("a16t: first")
	var submitted sync.WaitGroup
	var ran atomic.Int32
	gate := make(chan struct{})
	for s := range 4 {
		submitted.Add(1)
		go func() {
			defer submitted.Done()
			for i := range 50 {
				g.Go(func(ctx context.Context, _ resources.Worker) error {
					ran.Add(1)
					if s == 2 && i == 25 {
						<-gate
						return first
					}
					return nil
				})
			}
		}()
	}
	submitted.Wait()
	res := make(chan error, 2)
	for range 2 {
		go func() { res <- g.Wait() }()
	}
	close(gate)
	for range 2 {
		if err := a16tRecv(t, res, "Wait"); err != first {
			t.Errorf("Wait = %v, want first", err)
		}
	}
}

// A feeder's last tasks, handed in while its stop runs, are taken and run
// under Drain: "while the pool still takes the feeder's last tasks".
func TestA16tFeederLastTasksRun(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4))
	var ran atomic.Int32
	var servingInStop, errInStop atomic.Value
	if err := p.AddFeeder(func(ctx context.Context) error {
		servingInStop.Store(p.Serving())
		var e error
		for range 3 {
			if err := p.Go(ctx, func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
				e = err
			}
		}
		errInStop.Store([]error{e})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if e, _ := errInStop.Load().([]error); len(e) != 1 || e[0] != nil {
		t.Errorf("Go from the feeder's stop: %v", e)
	}
	if ran.Load() != 3 {
		t.Errorf("feeder's last tasks ran %d of 3", ran.Load())
	}
	t.Logf("Serving() during the feeder's stop: %v", servingInStop.Load())
}

// Do and Submit with a nil context or task: ErrNilContext / ErrNilTask, and
// before the start ErrNotStarted; nothing runs.
func TestA16tBadInputAndNotStarted(t *testing.T) {
	var p *a16tP
	app := fx.New(fx.NopLogger, workerpool.Provide[resources.Worker]("a16t-ns", workerpool.Workers(1)), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	task := func(context.Context, resources.Worker) error { ran.Add(1); return nil }
	ctx := context.Background()
	if err := p.Go(ctx, task); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Go before start = %v", err)
	}
	if err := p.Do(ctx, task); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Do before start = %v", err)
	}
	if p.TryGo(task) {
		t.Error("TryGo before start")
	}
	var reported atomic.Int32
	if err := p.GoReport(ctx, task, func(workerpool.Outcome, error) { reported.Add(1) }); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("GoReport before start = %v", err)
	}
	g, _ := p.Group(ctx)
	g.Go(task)
	if err := g.Wait(); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Group before start: %v", err)
	}
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Resize before start: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, a16tGuard)
	defer cancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	defer app.Stop(sctx)
	//lint:ignore SA1012 on purpose
	if err := p.Do(nil, task); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
		t.Errorf("Do(nil ctx) = %v", err)
	}
	//lint:ignore SA1012 on purpose
	if err := p.Go(nil, task); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
		t.Errorf("Go(nil ctx) = %v", err)
	}
	if err := p.Do(ctx, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Do(nil task) = %v", err)
	}
	if err := p.Go(ctx, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Go(nil task) = %v", err)
	}
	if p.TryGo(nil) {
		t.Error("TryGo(nil) = true")
	}
	if err := p.GoReport(ctx, nil, func(workerpool.Outcome, error) { reported.Add(1) }); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("GoReport(nil task) = %v", err)
	}
	if err := p.GoReport(ctx, task, nil); err == nil {
		t.Errorf("GoReport(nil report) = nil")
	}
	if _, err := workerpool.Submit[resources.Worker, int](ctx, p, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Submit(nil) = %v", err)
	}
	if err := app.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 || reported.Load() != 0 {
		t.Errorf("ran %d reported %d", ran.Load(), reported.Load())
	}
}
