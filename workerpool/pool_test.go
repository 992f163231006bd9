package workerpool_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/internal/fakeclock"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

// start starts an app holding one pool named "test" and stops it when the
// test ends, unless the test stopped it itself.
func start[R any](t *testing.T, opts ...workerpool.Option) (*workerpool.Pool[R], *fxtest.App) {
	t.Helper()
	var p *workerpool.Pool[R]
	app := fxtest.New(t, workerpool.Provide[R]("test", opts...), fx.Populate(&p))
	app.RequireStart()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { app.RequireStop() }) })
	return p, app
}

func TestOptionString(t *testing.T) {
	tests := []struct {
		give workerpool.Option
		want string
	}{
		{workerpool.Workers(3), "workerpool.Workers(3)"},
		{workerpool.QueueSize(10), "workerpool.QueueSize(10)"},
		{workerpool.StartConcurrency(2), "workerpool.StartConcurrency(2)"},
		{workerpool.Named(), "workerpool.Named()"},
		{workerpool.MaxRestarts(5, time.Minute), "workerpool.MaxRestarts(5, 1m0s)"},
		{workerpool.RestartBackoff(time.Millisecond, time.Second), "workerpool.RestartBackoff(1ms, 1s)"},
		{workerpool.MaxTasksPerWorker(100), "workerpool.MaxTasksPerWorker(100)"},
		{workerpool.MaxWorkerAge(time.Hour), "workerpool.MaxWorkerAge(1h0m0s)"},
		{workerpool.OnStop(workerpool.Cancel), "workerpool.OnStop(workerpool.Cancel)"},
		{workerpool.OnDropped(func(_ context.Context, _ func(context.Context, int) error) {}), "workerpool.OnDropped[int](...)"},
		{workerpool.ErrorHandler(func(error) {}), "workerpool.ErrorHandler(...)"},
		{workerpool.WithClock(fakeclock.New()), "workerpool.WithClock(...)"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if got := workerpool.InFlight(4).String(); got != "workerpool.InFlight(4)" {
		t.Errorf("InFlight(4).String() = %q", got)
	}
}

func TestInvalidOptionsFailFxNew(t *testing.T) {
	tests := []struct {
		name string
		give workerpool.Option
		want string
	}{
		{"NegativeWorkers", workerpool.Workers(-2), "workerpool.Workers(-2): must be at least 1"},
		{"ZeroStartConcurrency", workerpool.StartConcurrency(0), "workerpool.StartConcurrency(0)"},
		{"ZeroRestarts", workerpool.MaxRestarts(0, time.Second), "workerpool.MaxRestarts(0, 1s)"},
		{"NoRestartWindow", workerpool.MaxRestarts(3, 0), "workerpool.MaxRestarts(3, 0s)"},
		{"BackoffMinAboveMax", workerpool.RestartBackoff(time.Second, time.Millisecond), "want 0 < min <= max"},
		{"ZeroMaxTasks", workerpool.MaxTasksPerWorker(0), "workerpool.MaxTasksPerWorker(0)"},
		{"NegativeAge", workerpool.MaxWorkerAge(-time.Second), "workerpool.MaxWorkerAge(-1s): must be positive"},
		{"UnknownPolicy", workerpool.OnStop(workerpool.StopPolicy(7)), "workerpool.OnStop(workerpool.StopPolicy(7))"},
		{"NilHandler", workerpool.ErrorHandler(nil), "nil func"},
		{"NilClock", workerpool.WithClock(nil), "nil clock"},
		{"NilOption", nil, "nil option"},
		{"DroppedOfAnotherType", workerpool.OnDropped(func(_ context.Context, _ func(context.Context, string) error) {}), "OnDropped takes tasks of another type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger,
				workerpool.Provide[int]("bad", tt.give),
				fx.Supply(1),
				fx.Invoke(func(*workerpool.Pool[int]) {}),
			)
			err := app.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `pool "bad"`) {
				t.Errorf("fx.New() = %v, want an error naming the pool and %q", err, tt.want)
			}
		})
	}
	app := fx.New(fx.NopLogger, workerpool.Provide[int](""), fx.Invoke(func(*workerpool.Pool[int]) {}))
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "empty pool name") {
		t.Errorf("fx.New() with an empty name = %v", err)
	}
}

// A second ErrorHandler or OnDropped used to replace the first without a
// word: the app's handler went dark. Each fails fx.New, naming it.
func TestHandlersGivenTwiceFailFxNew(t *testing.T) {
	dropped := func(context.Context, func(context.Context, int) error) {}
	for _, tt := range []struct {
		name string
		give []workerpool.Option
		want string
	}{
		{"ErrorHandler", []workerpool.Option{workerpool.ErrorHandler(func(error) {}), workerpool.ErrorHandler(func(error) {})}, "workerpool.ErrorHandler(...): given twice"},
		{"OnDropped", []workerpool.Option{workerpool.OnDropped(dropped), workerpool.OnDropped(dropped)}, "workerpool.OnDropped[int](...): given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger,
				workerpool.Provide[int]("twice", tt.give...),
				fx.Supply(1),
				fx.Invoke(func(*workerpool.Pool[int]) {}),
			)
			if err := app.Err(); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `pool "twice"`) {
				t.Errorf("fx.New() = %v, want an error naming the pool and %q", err, tt.want)
			}
		})
	}
}

// Serving is what a feeder given a pool checks before it feeds: a
// JetStream consumer started on a pool that had not started spun, fetching
// and handing back each message about a hundred times a second.
func TestServing(t *testing.T) {
	var p *workerpool.Pool[resources.Worker]
	app := fxtest.New(t, workerpool.Provide[resources.Worker]("serving", workerpool.Workers(2)), fx.Populate(&p))
	if p.Serving() {
		t.Error("Serving() = true before the start")
	}
	if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { return nil }); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Go before the start = %v, want ErrNotStarted", err)
	}
	app.RequireStart()
	if !p.Serving() {
		t.Error("Serving() = false once started")
	}
	app.RequireStop()
	if p.Serving() {
		t.Error("Serving() = true once stopped")
	}
}

func TestNilTask(t *testing.T) {
	p, _ := start[resources.Worker](t, workerpool.Workers(1))
	if err := p.Go(t.Context(), nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Go(nil) = %v", err)
	}
	if err := p.Do(t.Context(), nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Do(nil) = %v", err)
	}
	if _, err := workerpool.Submit[resources.Worker, int](t.Context(), p, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Submit(nil) = %v", err)
	}
	if p.TryGo(nil) {
		t.Error("TryGo(nil) = true")
	}
}

// block occupies every worker of p until release is closed.
func block(t *testing.T, p *workerpool.Pool[resources.Worker], workers int) (release func()) {
	t.Helper()
	var (
		started sync.WaitGroup
		ch      = make(chan struct{})
	)
	started.Add(workers)
	for range workers {
		if err := p.Go(t.Context(), func(context.Context, resources.Worker) error {
			started.Done()
			<-ch
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	started.Wait()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

func TestFullQueue(t *testing.T) {
	p, _ := start[resources.Worker](t, workerpool.Workers(1), workerpool.QueueSize(1))
	release := block(t, p, 1)
	var ran atomic.Int32
	task := func(context.Context, resources.Worker) error { ran.Add(1); return nil }
	if !p.TryGo(task) {
		t.Fatal("TryGo() on an empty queue = false")
	}
	if p.TryGo(task) {
		t.Error("TryGo() on a full queue = true, want false without blocking")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Go(ctx, task); !errors.Is(err, context.Canceled) {
		t.Errorf("Go() on a full queue with a done ctx = %v, want context.Canceled", err)
	}
	if err := p.Do(ctx, task); !errors.Is(err, context.Canceled) {
		t.Errorf("Do() on a full queue with a done ctx = %v, want context.Canceled", err)
	}
	if s := p.Stats(); s.Queued != 1 || s.Busy != 1 || s.Workers != 1 {
		t.Errorf("Stats() = %+v, want 1 queued, 1 busy, 1 worker", s)
	}
	release()
	if err := p.Do(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	if got := ran.Load(); got != 2 {
		t.Errorf("%d tasks ran, want 2", got)
	}
}

func TestSubmitBeforeStartIsRefused(t *testing.T) {
	var p *workerpool.Pool[resources.Worker]
	task := func(context.Context, resources.Worker) error { return nil }
	app := fxtest.New(t,
		workerpool.Provide[resources.Worker]("early", workerpool.Workers(1)),
		fx.Invoke(func(pool *workerpool.Pool[resources.Worker]) error {
			p = pool
			// fx.Invoke runs before any OnStart: the pool takes nothing yet,
			// since fx might never start it.
			if err := p.Go(context.Background(), task); !errors.Is(err, workerpool.ErrNotStarted) {
				t.Errorf("Go() before Start = %v, want ErrNotStarted", err)
			}
			if p.TryGo(task) {
				t.Error("TryGo() before Start = true")
			}
			return nil
		}),
	)
	app.RequireStart()
	if err := p.Do(t.Context(), task); err != nil {
		t.Errorf("Do() after Start = %v", err)
	}
	app.RequireStop()
}

func TestFailedStartRefusesTasks(t *testing.T) {
	type Conn struct{}
	var p *workerpool.Pool[*Conn]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Conn]("doomed", workerpool.Resources(resources.PerWorker(func() (*Conn, error) {
			return nil, errors.New("refused")
		}))),
		fx.Populate(&p),
	)
	if err := app.Start(t.Context()); err == nil {
		t.Fatal("Start() = nil, want the open error")
	}
	if _, err := workerpool.Submit(t.Context(), p, func(context.Context, *Conn) (int, error) { return 1, nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Submit() after a failed start = %v, want ErrClosed", err)
	}
}

func TestErrorHandlerGetsErrorsOfGo(t *testing.T) {
	errs := make(chan error, 1)
	p, _ := start[resources.Worker](t, workerpool.Workers(1), workerpool.ErrorHandler(func(err error) { errs <- err }))
	boom := errors.New("boom")
	if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { return boom }); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, boom) {
		t.Errorf("handler got %v, want boom", err)
	}
	if s := p.Stats(); s.Failed != 1 || s.Done != 1 {
		t.Errorf("Stats() = %+v, want 1 done, 1 failed", s)
	}
}

func TestFutureWaitHonoursContext(t *testing.T) {
	p, _ := start[resources.Worker](t, workerpool.Workers(1))
	release := block(t, p, 1)
	f, err := workerpool.Submit(t.Context(), p, func(context.Context, resources.Worker) (string, error) { return "done", nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(done ctx) = %v, want context.Canceled", err)
	}
	release()
	if v, err := f.Wait(t.Context()); v != "done" || err != nil {
		t.Errorf("second Wait() = %q, %v, want done", v, err)
	}
	select {
	case <-f.Done():
	default:
		t.Error("Done() not closed after the result")
	}
}

// journal records opens and closes of per-worker resources.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.events, ",")
}

type Conn struct{ gen int }

// conns declares a *Conn per worker that journals each open and close;
// fail, if not nil, decides whether an open fails.
func conns(j *journal, fail func(resources.Worker) bool) workerpool.Option {
	return workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func(), error) {
		if fail != nil && fail(w) {
			j.add("fail g" + itoa(w.Generation))
			return nil, nil, errors.New("server down")
		}
		j.add("open g" + itoa(w.Generation))
		return &Conn{gen: w.Generation}, func() { j.add("close g" + itoa(w.Generation)) }, nil
	}))
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestErrBrokenRebuildsTheWorker(t *testing.T) {
	var j journal
	p, app := start[*Conn](t, workerpool.Workers(1), conns(&j, nil))
	gen := func() int { return generation(t, p) }
	if g := gen(); g != 0 {
		t.Fatalf("generation %d, want 0", g)
	}
	broken := p.Do(t.Context(), func(context.Context, *Conn) error {
		return errors.Join(errors.New("conn reset"), resources.ErrBroken)
	})
	if !errors.Is(broken, resources.ErrBroken) {
		t.Fatalf("Do() = %v, want the task's own error", broken)
	}
	if g := gen(); g != 1 {
		t.Errorf("after ErrBroken: generation %d, want 1", g)
	}
	if s := p.Stats(); s.Restarts != 1 {
		t.Errorf("Restarts = %d, want 1", s.Restarts)
	}
	app.RequireStop()
	if got, want := j.String(), "open g0,close g0,open g1,close g1"; got != want {
		t.Errorf("journal %q, want %q", got, want)
	}
}

func TestRestartBacksOffWhileReopenFails(t *testing.T) {
	var (
		j        journal
		clock    = fakeclock.New()
		failures atomic.Int32
	)
	failures.Store(2) // the first two reopens fail
	p, _ := start[*Conn](t,
		workerpool.Workers(1),
		workerpool.WithClock(clock),
		workerpool.RestartBackoff(100*time.Millisecond, 150*time.Millisecond),
		conns(&j, func(w resources.Worker) bool { return w.Generation > 0 && failures.Add(-1) >= 0 }),
	)
	changed := clock.Changed()
	if err := p.Go(t.Context(), func(context.Context, *Conn) error { panic("bad state") }); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for range 2 { // each failed reopen sets a timer: fire it
		<-changed
		changed = clock.Changed()
		pending := clock.Pending()
		if len(pending) != 1 {
			t.Fatalf("pending timers %v, want one backoff", pending)
		}
		waits = append(waits, pending[0])
		clock.Add(pending[0])
	}
	f, err := workerpool.Submit(t.Context(), p, func(_ context.Context, c *Conn) (int, error) { return c.gen, nil })
	if err != nil {
		t.Fatal(err)
	}
	// A failed attempt does not use up a generation: the resources opened
	// after one rebuild are generation 1, however many attempts it took.
	if g, err := f.Wait(t.Context()); g != 1 || err != nil {
		t.Errorf("after two failed reopens: generation %d, %v, want 1", g, err)
	}
	// Each wait lies between half and all of its backoff: 100ms, then 150ms (capped).
	if waits[0] < 50*time.Millisecond || waits[0] > 100*time.Millisecond ||
		waits[1] < 75*time.Millisecond || waits[1] > 150*time.Millisecond {
		t.Errorf("backoff waits %v, want in [50ms, 100ms] then [75ms, 150ms]", waits)
	}
	if got, want := j.String(), "open g0,close g0,fail g1,fail g1,open g1"; got != want {
		t.Errorf("journal %q, want %q", got, want)
	}
}

func TestMaxRestartsFailsThePoolAndStopsTheApp(t *testing.T) {
	var (
		j       journal
		dropped atomic.Int32
	)
	p, app := start[*Conn](t,
		workerpool.Workers(1),
		workerpool.MaxRestarts(2, time.Hour),
		workerpool.OnDropped(func(_ context.Context, _ func(context.Context, *Conn) error) { dropped.Add(1) }),
		conns(&j, nil),
	)
	broken := func(context.Context, *Conn) error { return resources.ErrBroken }
	for range 2 {
		if err := p.Do(t.Context(), broken); !errors.Is(err, resources.ErrBroken) {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	f, err := workerpool.Submit(t.Context(), p, func(context.Context, *Conn) (int, error) {
		<-release
		return 0, resources.ErrBroken // the third restart within the hour
	})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := workerpool.Submit(t.Context(), p, func(context.Context, *Conn) (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := f.Wait(t.Context()); !errors.Is(err, resources.ErrBroken) {
		t.Fatal(err)
	}
	sig := <-app.Wait()
	if sig.ExitCode != 1 {
		t.Errorf("shutdown signal %+v, want exit code 1", sig)
	}
	if _, err := queued.Wait(t.Context()); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("queued task: %v, want ErrClosed", err)
	}
	if err := p.Go(t.Context(), broken); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go() after failing = %v, want ErrClosed", err)
	}
	// The submitter is told first, then OnDropped is called: wait for it.
	waitUntil(t, "OnDropped got the queued task", func() bool { return dropped.Load() >= 1 })
	if dropped.Load() != 1 {
		t.Errorf("OnDropped got %d tasks, want 1", dropped.Load())
	}
}

func TestMaxTasksPerWorkerRecycles(t *testing.T) {
	var j journal
	p, app := start[*Conn](t, workerpool.Workers(1), workerpool.MaxTasksPerWorker(3), conns(&j, nil))
	var gens []int
	for range 7 {
		f, err := workerpool.Submit(t.Context(), p, func(_ context.Context, c *Conn) (int, error) { return c.gen, nil })
		if err != nil {
			t.Fatal(err)
		}
		g, err := f.Wait(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	if !slices.Equal(gens, []int{0, 0, 0, 1, 1, 1, 2}) {
		t.Errorf("generations %v, want three tasks each", gens)
	}
	if s := p.Stats(); s.Recycles != 2 || s.Restarts != 0 {
		t.Errorf("Stats() = %+v, want 2 recycles, 0 restarts", s)
	}
	app.RequireStop()
	if got, want := j.String(), "open g0,close g0,open g1,close g1,open g2,close g2"; got != want {
		t.Errorf("journal %q, want %q", got, want)
	}
}

func TestMaxWorkerAgeRecyclesBeforeTheNextTask(t *testing.T) {
	var (
		j     journal
		clock = fakeclock.New()
	)
	p, _ := start[*Conn](t, workerpool.Workers(1), workerpool.WithClock(clock), workerpool.MaxWorkerAge(time.Hour), conns(&j, nil))
	gen := func() int { return generation(t, p) }
	if g := gen(); g != 0 {
		t.Fatalf("generation %d, want 0", g)
	}
	clock.Add(59 * time.Minute)
	if g := gen(); g != 0 {
		t.Errorf("at 59 minutes: generation %d, want 0", g)
	}
	clock.Add(time.Minute)
	if g := gen(); g != 1 {
		t.Errorf("at one hour: generation %d, want 1", g)
	}
}

func TestStopWithCancelRunsNoQueuedTask(t *testing.T) {
	var dropped atomic.Int32
	p, app := start[resources.Worker](t,
		workerpool.Workers(1),
		workerpool.QueueSize(10),
		workerpool.OnStop(workerpool.Cancel),
		workerpool.OnDropped(func(_ context.Context, _ func(context.Context, resources.Worker) error) { dropped.Add(1) }),
	)
	var (
		running = make(chan struct{})
		cause   = make(chan error, 1)
		ran     atomic.Int32
	)
	if err := p.Go(t.Context(), func(ctx context.Context, _ resources.Worker) error {
		close(running)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-running
	futures := make([]*workerpool.Future[int], 5)
	for i := range futures {
		f, err := workerpool.Submit(t.Context(), p, func(context.Context, resources.Worker) (int, error) { ran.Add(1); return i, nil })
		if err != nil {
			t.Fatal(err)
		}
		futures[i] = f
	}
	app.RequireStop()
	if err := <-cause; !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("running task's context cause = %v, want ErrClosed", err)
	}
	for i, f := range futures {
		if _, err := f.Wait(t.Context()); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("future %d: %v, want ErrClosed", i, err)
		}
	}
	if ran.Load() != 0 || dropped.Load() != 5 || p.Stats().Dropped != 5 {
		t.Errorf("ran %d, OnDropped %d, Stats %+v; want 0 run and 5 dropped", ran.Load(), dropped.Load(), p.Stats())
	}
}

func TestStopCancelsRunningTasksWhenTheDeadlineNears(t *testing.T) {
	p, app := start[resources.Worker](t, workerpool.Workers(1))
	running := make(chan struct{})
	cause := make(chan error, 1)
	if err := p.Go(t.Context(), func(ctx context.Context, _ resources.Worker) error {
		close(running)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-running
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Errorf("Stop() = %v, want nil: the task honoured its context", err)
	}
	if err := <-cause; !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("task's context cause = %v, want ErrClosed", err)
	}
}

func TestStopNamesATaskThatIgnoresItsContext(t *testing.T) {
	p, app := start[resources.Worker](t, workerpool.Workers(2))
	release := block(t, p, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := app.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "stuck in a task that ignores its context") ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop() = %v, want it to name the stuck task", err)
	}
	release()
}

func TestMap(t *testing.T) {
	p, _ := start[resources.Worker](t, workerpool.Workers(4))
	seq := func(n int) func(func(int) bool) {
		return func(yield func(int) bool) {
			for i := range n {
				if !yield(i) {
					return
				}
			}
		}
	}
	t.Run("ResultsInInputOrder", func(t *testing.T) {
		var got []int
		var errs int
		for v, err := range workerpool.Map(t.Context(), p, seq(100), func(_ context.Context, _ resources.Worker, x int) (int, error) {
			if x%10 == 3 {
				return 0, errors.New("unlucky")
			}
			return x * x, nil
		}) {
			if err != nil {
				errs++
				continue
			}
			got = append(got, v)
		}
		if errs != 10 || len(got) != 90 || !slices.IsSorted(got) {
			t.Errorf("got %d values (sorted: %v) and %d errors, want 90 in order and 10", len(got), slices.IsSorted(got), errs)
		}
	})
	t.Run("BoundsTasksInFlight", func(t *testing.T) {
		var now, peak atomic.Int32
		for _, err := range workerpool.Map(t.Context(), p, seq(50), func(context.Context, resources.Worker, int) (int, error) {
			n := now.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			now.Add(-1)
			return 0, nil
		}, workerpool.InFlight(2)) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if peak.Load() > 2 {
			t.Errorf("%d tasks ran at once, want at most 2", peak.Load())
		}
	})
	t.Run("EarlyBreakLeavesNothingRunning", func(t *testing.T) {
		var running atomic.Int32
		n := 0
		for range workerpool.Map(t.Context(), p, seq(1000), func(ctx context.Context, _ resources.Worker, x int) (int, error) {
			running.Add(1)
			defer running.Add(-1)
			if x > 0 {
				<-ctx.Done() // every task but the first waits for the break
			}
			return x, nil
		}, workerpool.InFlight(3)) {
			n++
			break
		}
		if n != 1 || running.Load() != 0 {
			t.Errorf("after break: %d consumed, %d still running; want 1 and 0", n, running.Load())
		}
	})
	t.Run("StopsWhenContextEnds", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var errs []error
		for _, err := range workerpool.Map(ctx, p, seq(1000), func(context.Context, resources.Worker, int) (int, error) {
			return 0, nil
		}, workerpool.InFlight(1)) {
			cancel()
			errs = append(errs, err)
		}
		if len(errs) == 0 || len(errs) >= 1000 || !errors.Is(errs[len(errs)-1], context.Canceled) {
			t.Errorf("after cancel: %d results, last %v; want a few, ending in context.Canceled", len(errs), errs[len(errs)-1])
		}
	})
}

func TestCheckIdleRebuildsAfterAFailedCheck(t *testing.T) {
	var (
		j       journal
		clock   = fakeclock.New()
		healthy atomic.Bool
		checks  atomic.Int32
	)
	healthy.Store(true)
	p, app := start[*Conn](t,
		workerpool.Workers(1),
		workerpool.WithClock(clock),
		workerpool.CheckIdle(time.Minute),
		workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func(), error) {
			j.add("open g" + itoa(w.Generation))
			return &Conn{gen: w.Generation}, func() { j.add("close g" + itoa(w.Generation)) }, nil
		}, resources.Check(func(_ context.Context, c *Conn) error {
			checks.Add(1)
			if !healthy.Load() {
				return errors.New("server went away")
			}
			return nil
		}))),
	)
	gen := func() int { return generation(t, p) }
	gen()
	if n := checks.Load(); n != 0 {
		t.Errorf("%d checks without idling, want 0", n)
	}
	// Idle past the limit while healthy: checked, kept.
	clock.Add(2 * time.Minute)
	if g := gen(); g != 0 || checks.Load() != 1 {
		t.Errorf("after a passed check: generation %d, %d checks; want 0 and 1", g, checks.Load())
	}
	// Idle past the limit while broken: checked, rebuilt before the task.
	healthy.Store(false)
	clock.Add(2 * time.Minute)
	if g := gen(); g != 1 {
		t.Errorf("after a failed check: generation %d, want 1", g)
	}
	app.RequireStop()
	if got, want := j.String(), "open g0,close g0,open g1,close g1"; got != want {
		t.Errorf("journal %q, want %q", got, want)
	}
	if s := p.Stats(); s.Restarts != 1 {
		t.Errorf("Restarts = %d, want 1", s.Restarts)
	}
}

// PoolConfig is an app's config, as read from flags or a file.
type PoolConfig struct {
	Workers int
	MaxAge  time.Duration
}

func TestOptionsFromConfig(t *testing.T) {
	fromConfig := workerpool.OptionsFrom(func(c PoolConfig) []workerpool.Option {
		return []workerpool.Option{workerpool.Workers(c.Workers), workerpool.MaxWorkerAge(c.MaxAge)}
	})
	t.Run("SizesThePool", func(t *testing.T) {
		var p *workerpool.Pool[resources.Worker]
		app := fxtest.New(t,
			fx.Supply(PoolConfig{Workers: 3, MaxAge: time.Hour}),
			workerpool.Provide[resources.Worker]("configured", workerpool.Workers(1), fromConfig),
			fx.Populate(&p),
		)
		app.RequireStart()
		if s := p.Stats(); s.Workers != 3 {
			t.Errorf("Stats() = %+v, want 3 workers from the config", s)
		}
		app.RequireStop()
	})
	t.Run("InvalidValueFailsFxNew", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			fx.Supply(PoolConfig{Workers: 0, MaxAge: time.Hour}),
			workerpool.Provide[resources.Worker]("configured", fromConfig),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		err := app.Err()
		for _, want := range []string{`pool "configured"`, "config", "workerpool.Workers(0)"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("fx.New() = %v, want it to name %q", err, want)
			}
		}
	})
	t.Run("ResourcesMayNotComeFromConfig", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			fx.Supply(PoolConfig{}),
			workerpool.Provide[resources.Worker]("configured", workerpool.OptionsFrom(func(PoolConfig) []workerpool.Option {
				return []workerpool.Option{workerpool.Resources(resources.PerWorker(func() *Conn { return nil }))}
			})),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), "must be given to Provide") {
			t.Errorf("fx.New() = %v", err)
		}
	})
	t.Run("MissingConfigIsFxMissingType", func(t *testing.T) {
		app := fx.New(fx.NopLogger,
			workerpool.Provide[resources.Worker]("configured", fromConfig),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), "missing type: workerpool_test.PoolConfig") {
			t.Errorf("fx.New() = %v", err)
		}
	})
	if got := fromConfig.String(); got != "workerpool.OptionsFrom[workerpool_test.PoolConfig](...)" {
		t.Errorf("String() = %q", got)
	}
}

// TestRegressionExpiredWorkerWithoutResourcesPanics: a worker whose
// resources expired and whose reopen gave up because the pool was failing
// rebuilt again on its next task — closing a nil scope.
func TestRegressionExpiredWorkerWithoutResourcesPanics(t *testing.T) {
	var (
		clock = fakeclock.New()
		fail  atomic.Bool
		j     journal
	)
	p, app := start[*Conn](t,
		workerpool.Workers(1),
		workerpool.QueueSize(4),
		workerpool.WithClock(clock),
		workerpool.MaxWorkerAge(time.Minute),
		workerpool.MaxRestarts(1, time.Hour),
		conns(&j, func(resources.Worker) bool { return fail.Load() }),
	)
	if err := p.Do(t.Context(), func(context.Context, *Conn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Expire the resources, make every reopen fail, and queue two tasks:
	// the first rebuild fails until the pool gives up; the second task
	// must be reported, not crash the worker.
	fail.Store(true)
	clock.Add(time.Minute)
	changed := clock.Changed()
	first, err := workerpool.Submit(t.Context(), p, func(context.Context, *Conn) (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	second, err := workerpool.Submit(t.Context(), p, func(context.Context, *Conn) (int, error) { return 2, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Fire each backoff timer until the pool fails and asks fx to stop.
	failed := app.Wait()
	for waiting := true; waiting; {
		select {
		case <-changed:
			changed = clock.Changed()
			for _, d := range clock.Pending() {
				clock.Add(d)
			}
		case <-failed:
			waiting = false
		}
	}
	for _, f := range []*workerpool.Future[int]{first, second} {
		if _, err := f.Wait(t.Context()); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Wait() = %v, want ErrClosed: the pool failed", err)
		}
	}
}

// generation runs a task on p and returns the generation of the *Conn it
// got.
func generation(t *testing.T, p *workerpool.Pool[*Conn]) int {
	t.Helper()
	f, err := workerpool.Submit(t.Context(), p, func(_ context.Context, c *Conn) (int, error) { return c.gen, nil })
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return g
}
