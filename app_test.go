package fxpool_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records opens and closes, as "open w3 B" and "close w3 B"; the
// app-scoped resource is "app".
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// of returns the events of one worker, in order.
func (j *journal) of(worker int) []string { return filter(j.all(), worker) }

// balance checks that every opened resource closed exactly once and that
// nothing closed that did not open.
func (j *journal) balance(t *testing.T) {
	t.Helper()
	count := map[string]int{}
	for _, e := range j.all() {
		verb, what, _ := strings.Cut(e, " ")
		switch verb {
		case "open":
			count[what]++
		case "close":
			count[what]--
			if count[what] < 0 {
				t.Errorf("%s closed more often than opened", what)
			}
		}
	}
	for what, n := range count {
		if n != 0 {
			t.Errorf("%s opened but not closed", what)
		}
	}
}

// The resources of the chain tests: App is app-scoped; A, B and C are per
// worker, C needs B needs A needs App.
type (
	App struct{ j *journal }
	A   struct {
		j  *journal
		id int
	}
	B struct{ a *A }
	C struct{ b *B }
)

func (a *A) Close() error { a.j.add("close w%d A", a.id); return nil }

type chainDeps struct {
	fx.In
	C *C
	W resources.Worker
}

// chain declares A, B, C. failAt names a worker and resource that fails to
// open ("w3 B"), if any.
func chain(j *journal, failAt string) workerpool.Option {
	fail := func(w resources.Worker, what string) error {
		if fmt.Sprintf("w%d %s", w.ID, what) == failAt {
			return errors.New("no more connections")
		}
		return nil
	}
	return workerpool.Resources(
		resources.PerWorker(func(app *App, w resources.Worker) (*A, error) {
			if err := fail(w, "A"); err != nil {
				return nil, err
			}
			j.add("open w%d A", w.ID)
			return &A{j: j, id: w.ID}, nil
		}),
		resources.PerWorker(func(a *A, w resources.Worker) (*B, func(), error) {
			if err := fail(w, "B"); err != nil {
				return nil, nil, err
			}
			j.add("open w%d B", w.ID)
			return &B{a: a}, func() { j.add("close w%d B", w.ID) }, nil
		}),
		resources.PerWorker(func(ctx context.Context, b *B, w resources.Worker) (*C, func(context.Context) error, error) {
			if err := fail(w, "C"); err != nil {
				return nil, nil, err
			}
			j.add("open w%d C", w.ID)
			return &C{b: b}, func(context.Context) error { j.add("close w%d C", w.ID); return nil }, nil
		}),
	)
}

// provideApp provides the app-scoped *App, closed by its own OnStop.
func provideApp(j *journal) fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) *App {
		lc.Append(fx.StopHook(func() { j.add("close app") }))
		j.add("open app")
		return &App{j: j}
	})
}

func TestClassicOpenOnStartCloseOnStop(t *testing.T) {
	var (
		j     journal
		conns atomic.Int32
	)
	type Conn struct{ id int }
	bad := fx.New(fx.NopLogger,
		workerpool.Provide[*Conn]("classic",
			workerpool.Workers(4),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func()) {
				return nil, nil
			})),
		),
	)
	// The constructor above has a wrong shape: fx.New reports it.
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "want error") {
		t.Fatalf("fx.New with a (T, func()) constructor = %v, want an error about its results", err)
	}

	app := fxtest.New(t,
		workerpool.Provide[*Conn]("classic",
			workerpool.Workers(4),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func(), error) {
				conns.Add(1)
				j.add("open w%d conn", w.ID)
				return &Conn{id: w.ID}, func() { j.add("close w%d conn", w.ID) }, nil
			})),
		),
		fx.Invoke(func(*workerpool.Pool[*Conn]) {}),
	)
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d resources opened before Start, want 0", n)
	}
	app.RequireStart()
	if got := len(j.all()); got != 4 {
		t.Fatalf("after Start: %d events %v, want 4 opens", got, j.all())
	}
	app.RequireStop()
	for w := range 4 {
		want := []string{fmt.Sprintf("open w%d conn", w), fmt.Sprintf("close w%d conn", w)}
		if got := j.of(w); !slices.Equal(got, want) {
			t.Errorf("worker %d: %v, want %v", w, got, want)
		}
	}
	j.balance(t)
}

func TestChainClosesInReverseBeforeAppScoped(t *testing.T) {
	var j journal
	var pool *workerpool.Pool[chainDeps]
	app := fxtest.New(t,
		fxpool.Module,
		provideApp(&j),
		workerpool.Provide[chainDeps]("chain", workerpool.Workers(3), chain(&j, "")),
		fx.Populate(&pool),
	)
	app.RequireStart()
	err := pool.Do(t.Context(), func(_ context.Context, d chainDeps) error {
		if d.C.b.a.id != d.W.ID {
			return fmt.Errorf("worker %d got the A of worker %d", d.W.ID, d.C.b.a.id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	app.RequireStop()

	for w := range 3 {
		want := []string{
			fmt.Sprintf("open w%d A", w), fmt.Sprintf("open w%d B", w), fmt.Sprintf("open w%d C", w),
			fmt.Sprintf("close w%d C", w), fmt.Sprintf("close w%d B", w), fmt.Sprintf("close w%d A", w),
		}
		if got := j.of(w); !slices.Equal(got, want) {
			t.Errorf("worker %d: %v, want %v", w, got, want)
		}
	}
	events := j.all()
	if events[0] != "open app" || events[len(events)-1] != "close app" {
		t.Errorf("events %v: want the app-scoped resource opened first and closed last", events)
	}
	j.balance(t)
}

func TestFailedOpenRollsBackEveryWorker(t *testing.T) {
	var j journal
	app := fx.New(
		fx.NopLogger,
		provideApp(&j),
		workerpool.Provide[chainDeps]("chain", workerpool.Workers(5), chain(&j, "w3 B")),
		fx.Invoke(func(*workerpool.Pool[chainDeps]) {}),
	)
	err := app.Start(t.Context())
	if err == nil {
		t.Fatal("Start() = nil, want the open error")
	}
	for _, want := range []string{`pool "chain"`, "worker 3", "open *fxpool_test.B", "no more connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start() = %q, want it to name %q", err, want)
		}
	}
	var oe *resources.OpenError
	if !errors.As(err, &oe) || oe.Resource != "*fxpool_test.B" {
		t.Errorf("Start() = %v, want a *resources.OpenError for B", err)
	}
	// Every worker but 3 may have opened A, B, C; worker 3 opened only A.
	// Each must be closed, in reverse order, by the time Start returns.
	j.balance(t)
	if got, want := j.of(3), []string{"open w3 A", "close w3 A"}; !slices.Equal(got, want) {
		t.Errorf("worker 3: %v, want %v", got, want)
	}
	for _, w := range []int{0, 1, 2, 4} {
		ev := j.of(w)
		opens, closes := ev[:len(ev)/2], ev[len(ev)/2:]
		for k := range opens {
			if strings.TrimPrefix(opens[k], "open") != strings.TrimPrefix(closes[len(closes)-1-k], "close") {
				t.Errorf("worker %d: %v, want closes in reverse order of opens", w, ev)
				break
			}
		}
	}
}

func TestPanickingTaskReturnsPanicErrorAndPoolGoesOn(t *testing.T) {
	var pool *workerpool.Pool[resources.Worker]
	app := fxtest.New(t,
		workerpool.Provide[resources.Worker]("panicky", workerpool.Workers(1)),
		fx.Populate(&pool),
	)
	app.RequireStart()
	defer app.RequireStop()

	err := pool.Do(t.Context(), func(context.Context, resources.Worker) error { panic("task exploded") })
	var pe *workerpool.PanicError
	if !errors.As(err, &pe) || pe.Value != "task exploded" || !strings.Contains(string(pe.Stack), "app_test.go") {
		t.Fatalf("Do(panicking task) = %v, want a *PanicError with the value and a stack", err)
	}
	f, err := workerpool.Submit(t.Context(), pool, func(_ context.Context, w resources.Worker) (int, error) {
		return w.Generation, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := f.Wait(t.Context())
	if err != nil || gen != 1 {
		t.Errorf("after the panic: Wait() = %d, %v, want generation 1 (rebuilt), nil", gen, err)
	}
	if s := pool.Stats(); s.Panics != 1 || s.Done != 2 || s.Restarts != 1 {
		t.Errorf("Stats() = %+v, want 1 panic, 2 done, 1 restart", s)
	}
}

func TestStopRunsEveryQueuedTask(t *testing.T) {
	const queued = 1000
	var (
		pool    *workerpool.Pool[resources.Worker]
		ran     atomic.Int32
		release = make(chan struct{})
		started sync.WaitGroup
	)
	app := fxtest.New(t,
		workerpool.Provide[resources.Worker]("drain", workerpool.Workers(2), workerpool.QueueSize(queued)),
		fx.Populate(&pool),
	)
	app.RequireStart()
	started.Add(2)
	for range 2 { // occupy both workers
		if err := pool.Go(t.Context(), func(context.Context, resources.Worker) error {
			started.Done()
			<-release
			ran.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	started.Wait()
	for range queued {
		if err := pool.Go(t.Context(), func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if q := pool.Stats().Queued; q != queued {
		t.Fatalf("Queued = %d, want %d", q, queued)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(context.Background()) }()
	// The queue is full: this Go blocks until the stop closes the pool.
	if err := pool.Go(t.Context(), func(context.Context, resources.Worker) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Fatalf("Go() during stop = %v, want ErrClosed", err)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := ran.Load(); got != queued+2 {
		t.Errorf("%d tasks ran, want %d", got, queued+2)
	}
}

func TestSubmitAfterStop(t *testing.T) {
	var pool *workerpool.Pool[resources.Worker]
	app := fxtest.New(t, workerpool.Provide[resources.Worker]("closed"), fx.Populate(&pool))
	app.RequireStart().RequireStop()

	task := func(context.Context, resources.Worker) error { return nil }
	if err := pool.Go(t.Context(), task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go() = %v, want ErrClosed", err)
	}
	if err := pool.Do(t.Context(), task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do() = %v, want ErrClosed", err)
	}
	if _, err := workerpool.Submit(t.Context(), pool, func(context.Context, resources.Worker) (int, error) { return 0, nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Submit() = %v, want ErrClosed", err)
	}
	if pool.TryGo(task) {
		t.Error("TryGo() = true, want false")
	}
}

func TestHangingCleanupStopReturnsByDeadline(t *testing.T) {
	type Stream struct{}
	var (
		release = make(chan struct{})
		closed  = make(chan struct{})
	)
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[*Stream]("hang",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Stream, func(), error) {
				return &Stream{}, func() {
					if w.ID == 1 {
						<-release // ignores every deadline
						close(closed)
					}
				}, nil
			}, resources.Name("stream"))),
		),
		fx.Invoke(func(*workerpool.Pool[*Stream]) {}),
	)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The pool's stop gives up at nine tenths of the budget, leaving fx a
	// tenth to return its error: 200 ms, which a busy machine running the
	// race detector needs (with 100 ms, fx's deadline came first now and
	// then).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := app.Stop(ctx)

	select {
	case <-closed:
		t.Fatal("the cleanup returned before Stop did: the test proves nothing")
	default:
	}
	if !errors.Is(err, hooks.ErrStuck) {
		t.Errorf("Stop() = %v, want ErrStuck", err)
	}
	for _, want := range []string{`pool "hang"`, "worker 1", "close stream"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Stop() = %v, want it to name %q", err, want)
		}
	}
	close(release)
	<-closed
}

func TestStartTimeoutClosesWhatOpened(t *testing.T) {
	tests := []struct {
		name string
		// slowOpen is worker 3's constructor, still running when the start
		// times out.
		slowOpen func(ctx context.Context, unblock <-chan struct{}) error
	}{
		{
			name: "OpenHonoursContext",
			slowOpen: func(ctx context.Context, _ <-chan struct{}) error {
				<-ctx.Done()
				return ctx.Err()
			},
		},
		{
			name: "OpenIgnoresContext",
			slowOpen: func(_ context.Context, unblock <-chan struct{}) error {
				<-unblock
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				j       journal
				opened  sync.WaitGroup
				unblock = make(chan struct{})
				// What the journal held when the pool's OnStart returned.
				atReturn = make(chan []string, 1)
			)
			type Handle struct{}
			opened.Add(3)
			app := fx.New(
				fx.WithLogger(func() fxevent.Logger {
					return startWatcher(func(e *fxevent.OnStartExecuted) {
						if strings.Contains(e.FunctionName, "workerpool") {
							atReturn <- j.all()
						}
					})
				}),
				fx.StartTimeout(100*time.Millisecond),
				workerpool.Provide[*Handle]("slow",
					workerpool.Workers(4),
					workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*Handle, func(), error) {
						if w.ID == 3 {
							if err := tt.slowOpen(ctx, unblock); err != nil {
								return nil, nil, err
							}
						} else {
							defer opened.Done()
						}
						j.add("open w%d handle", w.ID)
						return &Handle{}, func() { j.add("close w%d handle", w.ID) }, nil
					})),
				),
				fx.Invoke(func(*workerpool.Pool[*Handle]) {}),
			)
			ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
			defer cancel()
			err := app.Start(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Start() = %v, want DeadlineExceeded", err)
			}
			// fx's Start returns at the deadline, leaving the hook running:
			// what matters is that the hook returns only once everything
			// that opened was closed.
			opened.Wait() // workers 0-2 did open
			events := <-atReturn
			for w := range 3 {
				want := []string{fmt.Sprintf("open w%d handle", w), fmt.Sprintf("close w%d handle", w)}
				if got := filter(events, w); !slices.Equal(got, want) {
					t.Errorf("worker %d when OnStart returned: %v, want %v", w, got, want)
				}
			}
			// Worker 3 either gave up, or is named as stuck; once its open
			// returns, it closes what it opened too.
			close(unblock)
			waitFor(t, func() bool { j.mu.Lock(); defer j.mu.Unlock(); return len(j.events)%2 == 0 })
			j.balance(t)
		})
	}
}

func TestPanicInConstructorOrCleanupIsAnError(t *testing.T) {
	type Handle struct{}
	newApp := func(ctor any) *fx.App {
		return fx.New(
			fx.NopLogger,
			workerpool.Provide[*Handle]("panicky", workerpool.Workers(2),
				workerpool.Resources(resources.PerWorker(ctor, resources.Name("gpu")))),
			fx.Invoke(func(*workerpool.Pool[*Handle]) {}),
		)
	}

	t.Run("Constructor", func(t *testing.T) {
		app := newApp(func() (*Handle, error) { panic("no device") })
		err := app.Start(t.Context())
		var pe *workerpool.PanicError
		if !errors.As(err, &pe) || pe.Value != "no device" || !strings.Contains(err.Error(), "open gpu") {
			t.Errorf("Start() = %v, want a PanicError naming gpu", err)
		}
	})
	t.Run("Cleanup", func(t *testing.T) {
		app := newApp(func() (*Handle, func(), error) {
			return &Handle{}, func() { panic("driver crashed") }, nil
		})
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		err := app.Stop(t.Context())
		var pe *workerpool.PanicError
		if !errors.As(err, &pe) || pe.Value != "driver crashed" || !strings.Contains(err.Error(), "close gpu") {
			t.Errorf("Stop() = %v, want a PanicError naming gpu", err)
		}
	})
}

func TestMissingDependencyNamesPoolAndConstructor(t *testing.T) {
	type DB struct{}
	type Conn struct{}
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[*Conn]("indexer",
			workerpool.Resources(resources.PerWorker(func(*DB) *Conn { return &Conn{} })),
		),
		fx.Invoke(func(*workerpool.Pool[*Conn]) {}),
	)
	err := app.Err()
	for _, want := range []string{"pool indexer", "*fxpool_test.Conn made by", "app_test.go:", "missing type: *fxpool_test.DB"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fx.New() = %v, want it to name %q", err, want)
		}
	}
}

func TestBadDeclarationsFailFxNew(t *testing.T) {
	type X struct{}
	type Y struct{}
	newX := func(*Y) *X { return &X{} }
	newY := func(*X) *Y { return &Y{} }
	tests := []struct {
		name    string
		give    []workerpool.Option
		wantErr error
		want    []string
	}{
		{
			name: "ZeroWorkers",
			give: []workerpool.Option{workerpool.Workers(0)},
			want: []string{`pool "bad"`, "workerpool.Workers(0)", "at least 1"},
		},
		{
			name: "NegativeQueue",
			give: []workerpool.Option{workerpool.QueueSize(-1)},
			want: []string{"workerpool.QueueSize(-1)"},
		},
		{
			name:    "NotAFunc",
			give:    []workerpool.Option{workerpool.Resources(resources.PerWorker(42))},
			wantErr: resources.ErrInvalidConstructor,
			want:    []string{"int is not a func"},
		},
		{
			name:    "ReturnsNothing",
			give:    []workerpool.Option{workerpool.Resources(resources.PerWorker(func() {}))},
			wantErr: resources.ErrInvalidConstructor,
			want:    []string{"returns nothing usable"},
		},
		{
			name:    "Cycle",
			give:    []workerpool.Option{workerpool.Resources(resources.PerWorker(newX), resources.PerWorker(newY))},
			wantErr: resources.ErrCycle,
			want:    []string{"*fxpool_test.X made by", "*fxpool_test.Y made by"},
		},
		{
			name:    "Duplicate",
			give:    []workerpool.Option{workerpool.Resources(resources.PerWorker(func() *X { return nil }), resources.PerWorker(func() (*X, error) { return nil, nil }))},
			wantErr: resources.ErrDuplicate,
			want:    []string{"*fxpool_test.X", "app_test.go"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger,
				workerpool.Provide[*X]("bad", tt.give...),
				fx.Invoke(func(*workerpool.Pool[*X]) {}),
			)
			err := app.Err()
			if err == nil {
				t.Fatal("fx.New() succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("fx.New() = %v, want %v", err, tt.wantErr)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("fx.New() = %v, want it to name %q", err, want)
				}
			}
		})
	}
}

func TestTwoPoolsWithOneTaskParameter(t *testing.T) {
	type in struct {
		fx.In
		Fast *workerpool.Pool[resources.Worker] `name:"fast"`
		Slow *workerpool.Pool[resources.Worker] `name:"slow"`
	}
	var pools in
	app := fxtest.New(t,
		fxpool.Module,
		workerpool.Provide[resources.Worker]("fast", workerpool.Named(), workerpool.Workers(2)),
		workerpool.Provide[resources.Worker]("slow", workerpool.Named(), workerpool.Workers(1)),
		fx.Populate(&pools),
		fx.Invoke(func(r *workerpool.Registry) {
			if got := r.Names(); !slices.Equal(got, []string{"fast", "slow"}) {
				t.Errorf("Registry.Names() = %v, want fast, slow", got)
			}
		}),
	)
	app.RequireStart()
	defer app.RequireStop()
	for _, tc := range []struct {
		pool *workerpool.Pool[resources.Worker]
		want string
	}{{pools.Fast, "fast"}, {pools.Slow, "slow"}} {
		f, err := workerpool.Submit(t.Context(), tc.pool, func(_ context.Context, w resources.Worker) (string, error) { return w.Pool, nil })
		if err != nil {
			t.Fatal(err)
		}
		if got, err := f.Wait(t.Context()); got != tc.want || err != nil {
			t.Errorf("Wait() = %q, %v, want %q", got, err, tc.want)
		}
	}
}

// startWatcher is an fx event logger that reports each OnStartExecuted.
type startWatcher func(*fxevent.OnStartExecuted)

func (w startWatcher) LogEvent(e fxevent.Event) {
	if e, ok := e.(*fxevent.OnStartExecuted); ok {
		w(e)
	}
}

func filter(events []string, worker int) []string {
	var out []string
	suffix := fmt.Sprintf(" w%d ", worker)
	for _, e := range events {
		if strings.Contains(e+" ", suffix) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls cond until it holds. It never fails on a slow machine: the
// test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestUnneededConstructorAsksFxForNothing(t *testing.T) {
	type DB struct{}
	type Conn struct{}
	type Cache struct{}
	var opened atomic.Int32
	app := fxtest.New(t,
		workerpool.Provide[*Cache]("lean",
			workerpool.Workers(2),
			workerpool.Resources(
				// Nothing needs *Conn, so nothing needs *DB, which no one provides.
				resources.PerWorker(func(*DB) *Conn { opened.Add(1); return &Conn{} }),
				resources.PerWorker(func() *Cache { return &Cache{} }),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*Cache]) {}),
	)
	app.RequireStart().RequireStop()
	if n := opened.Load(); n != 0 {
		t.Errorf("%d unneeded resources opened, want 0", n)
	}
}
