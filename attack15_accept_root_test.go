package fxpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// ---- README quick start, as written -------------------------------------

type qsStore struct{ out io.Writer }

func qsNewStore(lc fx.Lifecycle, out io.Writer) *qsStore {
	lc.Append(fx.StopHook(func() { fmt.Fprintln(out, "store closed") }))
	return &qsStore{out: out}
}

type qsSession struct {
	store  *qsStore
	worker int
}

func (s *qsSession) Close() error {
	fmt.Fprintf(s.store.out, "session %d closed\n", s.worker)
	return nil
}

type qsDeps struct {
	fx.In
	Session *qsSession
	Worker  resources.Worker
}

func qsRun(app *fx.App) error {
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return err
	}
	sig := <-app.Wait()
	stopCtx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		return err
	}
	if sig.ExitCode != 0 {
		return fmt.Errorf("quickstart: shut down with exit code %d", sig.ExitCode)
	}
	return nil
}

func qsNewApp(out io.Writer) *fx.App {
	return fx.New(
		fx.NopLogger,
		fxpool.Module,
		fx.Supply(fx.Annotate(out, fx.As(new(io.Writer)))),
		fx.Provide(qsNewStore),
		workerpool.Provide[qsDeps]("greeter",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, s *qsStore, w resources.Worker) (*qsSession, error) {
					return &qsSession{store: s, worker: w.ID}, nil
				}),
			),
		),
		fx.Invoke(qsGreet),
	)
}

func qsGreet(lc fx.Lifecycle, p *workerpool.Pool[qsDeps], sd fx.Shutdowner, out io.Writer) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		for _, name := range []string{"Ada", "Grace", "Barbara"} {
			err := p.Do(ctx, func(ctx context.Context, d qsDeps) error {
				fmt.Fprintf(out, "hello %s\n", name)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return sd.Shutdown()
	}))
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// "Its output: three greetings, then session 0 closed and session 1 closed
// (in either order), then store closed".
func TestAttack15AcceptReadmeQuickStart(t *testing.T) {
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- qsRun(qsNewApp(out)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the quick start hung")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("output %q; want 6 lines", lines)
	}
	if !slices.Equal(lines[:3], []string{"hello Ada", "hello Grace", "hello Barbara"}) {
		t.Errorf("greetings %q", lines[:3])
	}
	mid := slices.Clone(lines[3:5])
	slices.Sort(mid)
	if !slices.Equal(mid, []string{"session 0 closed", "session 1 closed"}) || lines[5] != "store closed" {
		t.Errorf("closes %q; want both sessions then the store", lines[3:])
	}
}

// ---- several pools ---------------------------------------------------------

type (
	a15Store  struct{}
	a15Writer struct{} // per worker of pool "writer"
	a15Batch  struct { // per worker of pool "batcher": flushes through "writer"
		w *workerpool.Pool[*a15Writer]
	}
)

// Pool "batcher"'s per-worker Batch flushes, when it closes, through pool
// "writer", which it was built from: fx stops "batcher" first, so every flush
// finds "writer" serving, and both close before the app-scoped store they use.
func TestAttack15AcceptPoolBuiltFromAPoolStopsFirst(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var flushErrs atomic.Int32
	var flushes atomic.Int32
	var writerCloses atomic.Int32
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		fx.Provide(func(lc fx.Lifecycle) *a15Store {
			lc.Append(fx.StopHook(func() { rec.Mark("store") }))
			return &a15Store{}
		}),
		workerpool.Provide[*a15Writer]("writer",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(*a15Store) (*a15Writer, func(), error) {
				return &a15Writer{}, func() { writerCloses.Add(1) }, nil
			})),
			rec.Option(),
		),
		workerpool.Provide[*a15Batch]("batcher",
			workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(func(_ *a15Store, w *workerpool.Pool[*a15Writer]) (*a15Batch, func(context.Context) error, error) {
				b := &a15Batch{w: w}
				return b, func(ctx context.Context) error {
					flushes.Add(1)
					err := w.Do(ctx, func(context.Context, *a15Writer) error { return nil })
					if err != nil {
						flushErrs.Add(1)
					}
					return err
				}, nil
			})),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Batch]) {}),
	).RequireStart()
	app.RequireStop()
	rec.Verify(t)
	if f, e := flushes.Load(), flushErrs.Load(); f != 3 || e != 0 {
		t.Errorf("%d flushes, %d failed; want 3, none failed", f, e)
	}
	// every close of "batcher" came before any close of "writer"
	var order []string
	for _, e := range rec.Events() {
		if c, ok := e.(workerpool.WorkerClosed); ok {
			order = append(order, c.Worker.Pool)
		}
	}
	if !slices.Equal(order, []string{"batcher", "batcher", "batcher", "writer", "writer"}) {
		t.Errorf("worker closes by pool: %q; want batcher's three, then writer's two", order)
	}
}

// Two pools of one name (different task types) in one app with fxpool.Module:
// a clear error naming the name, not a silent overwrite in the Registry.
func TestAttack15AcceptTwoPoolsOfOneNameAreAnError(t *testing.T) {
	type r1 struct{}
	type r2 struct{}
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic: %v", p)
			}
		}()
		app := fx.New(fx.NopLogger, fxpool.Module,
			workerpool.Provide[*r1]("twin", workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(func() *r1 { return &r1{} }))),
			workerpool.Provide[*r2]("twin", workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(func() *r2 { return &r2{} }))),
			fx.Invoke(func(*workerpool.Pool[*r1], *workerpool.Pool[*r2]) {}),
		)
		err = app.Err()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = app.Start(ctx)
			_ = app.Stop(ctx)
		}
	}()
	if err == nil {
		t.Fatal("two pools named twin were accepted")
	}
	if !strings.Contains(err.Error(), "twin") {
		t.Errorf("error does not name the pool: %v", err)
	}
}

// The Registry lists the pools built, sorted, with their stats.
func TestAttack15AcceptRegistryStatsFollowThePools(t *testing.T) {
	type ra struct{}
	type rb struct{}
	var reg *workerpool.Registry
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		workerpool.Provide[*rb]("zulu", workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func() *rb { return &rb{} }))),
		workerpool.Provide[*ra]("alpha", workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(func() *ra { return &ra{} }))),
		fx.Invoke(func(*workerpool.Pool[*ra], *workerpool.Pool[*rb]) {}),
		fx.Populate(&reg),
	).RequireStart()
	if got := reg.Names(); !slices.Equal(got, []string{"alpha", "zulu"}) {
		t.Errorf("Names = %q", got)
	}
	st := reg.Stats()
	if st["alpha"].Workers != 3 || st["zulu"].Workers != 2 {
		t.Errorf("Stats = %+v; want alpha 3 workers, zulu 2", st)
	}
	app.RequireStop()
}

// fxpool.Module given twice is an fx error, not a panic.
func TestAttack15AcceptModuleTwiceIsAnError(t *testing.T) {
	var app *fx.App
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic: %v", p)
			}
		}()
		app = fx.New(fx.NopLogger, fxpool.Module, fxpool.Module,
			fx.Invoke(func(*workerpool.Registry) {}))
	}()
	if app.Err() == nil {
		t.Error("fxpool.Module twice was accepted")
	}
}

// ---- budgets ---------------------------------------------------------------

type (
	a15Conn struct {
		closes *atomic.Int32
	}
	a15Tx struct{}
)

func (c *a15Conn) Close(ctx context.Context) error { c.closes.Add(1); return nil }

// Start budgets of a few ms, with opens that honour their context: the start
// fails or succeeds, and in the end every resource that opened closed exactly
// once, and no goroutine is left.
func TestAttack15AcceptTightStartBudgets(t *testing.T) {
	for i := range 30 {
		var opens, closes, txOpens, txCloses atomic.Int32
		app := fxpooltest.New(t,
			fx.Supply(zap.NewNop()),
			workerpool.Provide[*a15Tx]("tight",
				workerpool.Workers(4),
				workerpool.Resources(
					resources.PerWorker(func(ctx context.Context) (*a15Conn, error) {
						select {
						case <-time.After(time.Millisecond):
						case <-ctx.Done():
							return nil, context.Cause(ctx)
						}
						opens.Add(1)
						return &a15Conn{closes: &closes}, nil
					}),
					resources.PerWorker(func(ctx context.Context, _ *a15Conn) (*a15Tx, func(context.Context) error, error) {
						select {
						case <-time.After(time.Duration(i%3) * time.Millisecond):
						case <-ctx.Done():
							return nil, nil, ctx.Err()
						}
						txOpens.Add(1)
						return &a15Tx{}, func(context.Context) error { txCloses.Add(1); return nil }, nil
					}),
				),
			),
			fx.Invoke(func(*workerpool.Pool[*a15Tx]) {}),
		)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%6)*time.Millisecond)
		startErr := app.Start(ctx)
		cancel()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stopErr := app.Stop(stopCtx)
		cancel()
		if startErr == nil && stopErr != nil {
			t.Errorf("iteration %d: stop after a good start = %v", i, stopErr)
		}
		deadline := time.Now().Add(10 * time.Second)
		for opens.Load() != closes.Load() || txOpens.Load() != txCloses.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d (start %v): conns %d/%d, txs %d/%d opened/closed", i, startErr, opens.Load(), closes.Load(), txOpens.Load(), txCloses.Load())
			}
			time.Sleep(time.Millisecond)
		}
		app.VerifyNoLeaks()
		if o, c := opens.Load(), closes.Load(); o != c {
			t.Errorf("iteration %d: conns opened %d, closed %d", i, o, c)
		}
	}
}

// Stop budgets of a few ms, with busy workers whose tasks and cleanups honour
// their context: the stop returns, the pool refuses tasks, every resource
// closes exactly once, and no goroutine is left.
func TestAttack15AcceptTightStopBudgets(t *testing.T) {
	for i := range 30 {
		var opens, closes atomic.Int32
		var pool *workerpool.Pool[*a15Conn]
		app := fxpooltest.New(t,
			fx.Supply(zap.NewNop()),
			workerpool.Provide[*a15Conn]("tightstop",
				workerpool.Workers(3),
				workerpool.QueueSize(6),
				workerpool.OnStop(workerpool.StopPolicy(i%3)),
				workerpool.ErrorHandler(func(error) {}),
				workerpool.Resources(resources.PerWorker(func() (*a15Conn, func(context.Context) error, error) {
					opens.Add(1)
					c := &a15Conn{closes: &closes}
					return c, func(ctx context.Context) error {
						select {
						case <-time.After(2 * time.Millisecond):
						case <-ctx.Done():
						}
						return c.Close(ctx)
					}, nil
				})),
			),
			fx.Populate(&pool),
		).RequireStart()
		for range 9 {
			_ = pool.Go(context.Background(), func(ctx context.Context, _ *a15Conn) error {
				select {
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
		done := make(chan struct{})
		go func() { _ = app.Stop(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: app.Stop hung", i)
		}
		cancel()
		if err := pool.Go(context.Background(), func(context.Context, *a15Conn) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
			// fx skips every OnStop once the budget is gone, before the
			// pool's began: stop it ourselves, as a StopGuard would.
			if err != nil {
				t.Errorf("iteration %d: Go after the stop = %v; want ErrClosed or, if fx skipped the pool's stop, nil", i, err)
			}
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := pool.Stop(sctx, workerpool.Cancel); err != nil {
				t.Errorf("iteration %d: Pool.Stop after fx skipped the pool's OnStop = %v", i, err)
			}
			scancel()
		}
		deadline := time.Now().Add(10 * time.Second)
		for opens.Load() != closes.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: opened %d, closed %d", i, opens.Load(), closes.Load())
			}
			time.Sleep(time.Millisecond)
		}
		app.VerifyNoLeaks()
		if o, c := opens.Load(), closes.Load(); o != 3 || c != 3 {
			t.Errorf("iteration %d: opened %d, closed %d; want 3, 3", i, o, c)
		}
	}
}

// A stop without a deadline, and one with a generous deadline, wait for every
// cleanup: when app.Stop returns, all have run.
func TestAttack15AcceptStopWaitsForEveryCleanup(t *testing.T) {
	for _, withDeadline := range []bool{false, true} {
		var closes atomic.Int32
		app := fxpooltest.New(t,
			fx.Supply(zap.NewNop()),
			workerpool.Provide[*a15Tx]("slowclose",
				workerpool.Workers(3),
				workerpool.Resources(
					resources.PerWorker(func() (*a15Conn, func(), error) {
						return &a15Conn{}, func() { time.Sleep(30 * time.Millisecond); closes.Add(1) }, nil
					}),
					resources.PerWorker(func(*a15Conn) (*a15Tx, func(), error) {
						return &a15Tx{}, func() { time.Sleep(30 * time.Millisecond); closes.Add(1) }, nil
					}),
				),
			),
			fx.Invoke(func(*workerpool.Pool[*a15Tx]) {}),
		).RequireStart()
		ctx := context.Background()
		if withDeadline {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		if err := app.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := closes.Load(); n != 6 {
			t.Errorf("deadline=%v: app.Stop returned after %d of 6 cleanups", withDeadline, n)
		}
		app.VerifyNoLeaks()
	}
}

// Pool.Stop on demand returns the joined teardown errors; a second Stop and
// the app's stop return that result too.
func TestAttack15AcceptOnDemandStopResultIsTheAppsToo(t *testing.T) {
	errFlush := errors.New("flush failed")
	var pool *workerpool.Pool[*a15Tx]
	var closes atomic.Int32
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Tx]("ondemand",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func() (*a15Tx, func() error, error) {
				return &a15Tx{}, func() error { closes.Add(1); return errFlush }, nil
			})),
		),
		fx.Populate(&pool),
	).RequireStart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err1 := pool.Stop(ctx, workerpool.DropQueued)
	err2 := pool.Stop(ctx, workerpool.Drain)
	err3 := app.Stop(ctx)
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, errFlush) {
			t.Errorf("stop %d = %v; want the flush error", i+1, err)
		}
	}
	if n := closes.Load(); n != 2 {
		t.Errorf("%d closes; want 2", n)
	}
	app.VerifyNoLeaks()
}

// Invalid option values fail fx.New with an error naming the pool and the
// option as written; none panics.
func TestAttack15AcceptInvalidOptionsFailFxNew(t *testing.T) {
	for _, opt := range []workerpool.Option{
		workerpool.Workers(0),
		workerpool.Workers(-3),
		workerpool.QueueSize(-1),
		workerpool.StartConcurrency(-1),
		workerpool.MaxRestarts(0, time.Second),
		workerpool.MaxRestarts(3, 0),
		workerpool.MaxRestarts(3, -time.Second),
		workerpool.MaxTasksPerWorker(-1),
		workerpool.MaxWorkerAge(-time.Second),
		workerpool.CloseTimeout(-time.Second),
		workerpool.RestartBackoff(-time.Millisecond, time.Second),
		workerpool.RestartBackoff(2*time.Second, time.Second),
		workerpool.Elastic(-1, 2, time.Second),
		workerpool.Elastic(3, 2, time.Second),
		workerpool.Elastic(0, 0, time.Second),
		workerpool.Elastic(0, 2, 0),
		workerpool.CheckIdle(-time.Second),
	} {
		t.Run(opt.String(), func(t *testing.T) {
			type r struct{}
			var app *fx.App
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				app = fx.New(fx.NopLogger,
					workerpool.Provide[*r]("opts", opt,
						workerpool.Resources(resources.PerWorker(func() *r { return &r{} }))),
					fx.Invoke(func(*workerpool.Pool[*r]) {}),
				)
			}()
			err := app.Err()
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if app.Start(ctx) == nil {
					_ = app.Stop(ctx)
				}
				t.Fatalf("fx.New accepted %s", opt)
			}
			if !strings.Contains(err.Error(), "opts") || !strings.Contains(err.Error(), opt.String()) {
				t.Errorf("error does not name the pool and %s: %v", opt, err)
			}
		})
	}
}

// Nil callbacks given to the options are bad input: fx.New refuses them
// naming the option, or the pool runs without them; never a panic.
func TestAttack15AcceptNilCallbacksAreNotAPanic(t *testing.T) {
	type r struct{}
	type cfg struct{ n int }
	for _, opt := range []workerpool.Option{
		workerpool.Events(nil),
		workerpool.ErrorHandler(nil),
		workerpool.OnDropped[*r](nil),
		workerpool.OptionsFrom[cfg](nil),
		workerpool.WithClock(nil),
	} {
		t.Run(opt.String(), func(t *testing.T) {
			var app *fx.App
			var pool *workerpool.Pool[*r]
			panicked := func(f func()) (p any) {
				defer func() { p = recover() }()
				f()
				return nil
			}
			if p := panicked(func() {
				app = fx.New(fx.NopLogger,
					fx.Supply(cfg{n: 1}),
					workerpool.Provide[*r]("nilcb", opt, workerpool.Workers(1), workerpool.QueueSize(4),
						workerpool.OnStop(workerpool.Cancel),
						workerpool.Resources(resources.PerWorker(func() *r { return &r{} }))),
					fx.Populate(&pool),
				)
			}); p != nil {
				t.Fatalf("fx.New panicked: %v", p)
			}
			if err := app.Err(); err != nil {
				if !strings.Contains(err.Error(), "nilcb") {
					t.Errorf("error does not name the pool: %v", err)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatalf("start: %v", err)
			}
			release := make(chan struct{})
			_ = pool.Go(ctx, func(context.Context, *r) error { <-release; return errors.New("task failed") })
			_ = pool.Go(ctx, func(context.Context, *r) error { return errors.New("queued, dropped") })
			time.AfterFunc(20*time.Millisecond, func() { close(release) })
			if err := app.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
}

// ---- StopGuard across dependent pools --------------------------------------

// StopGuard, given a hook that stops before the pools and overruns the
// budget: once app.Stop has returned, both pools are closed — and still in
// reverse dependency order: "batcher" was built from "writer", so its
// Batches, which flush through "writer" when they close, close while "writer"
// still serves, as they do without the guard.
func TestAttack15AcceptStopGuardKeepsTheOrderBetweenPools(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slowhook=%v", slow), func(t *testing.T) {
			var flushErr atomic.Value
			var wcloses, bcloses atomic.Int32
			release := make(chan struct{})
			app := fxpooltest.New(t, fxpool.Module, fx.Supply(zap.NewNop()),
				workerpool.Provide[*a15Writer]("writer", workerpool.Workers(1),
					workerpool.Resources(resources.PerWorker(func() (*a15Writer, func(), error) {
						return &a15Writer{}, func() { wcloses.Add(1) }, nil
					}))),
				workerpool.Provide[*a15Batch]("batcher", workerpool.Workers(1),
					workerpool.Resources(resources.PerWorker(func(w *workerpool.Pool[*a15Writer]) (*a15Batch, func(context.Context) error, error) {
						return &a15Batch{w: w}, func(ctx context.Context) error {
							err := w.Do(ctx, func(context.Context, *a15Writer) error { return nil })
							flushErr.Store(fmt.Sprint(err))
							bcloses.Add(1)
							return err
						}, nil
					}))),
				fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[*a15Batch]) {
					// the batcher's worker is busy until its stop cancels its task
					lc.Append(fx.StartHook(func(ctx context.Context) error {
						return p.Go(ctx, func(ctx context.Context, _ *a15Batch) error { <-ctx.Done(); return nil })
					}))
					if slow {
						// stops before both pools, ignores its context
						lc.Append(fx.StopHook(func() { <-release }))
					}
				}),
				workerpool.StopGuard(),
			).RequireStart()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			done := make(chan error, 1)
			go func() { done <- app.Stop(ctx) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				close(release)
				t.Fatal("app.Stop hung")
			}
			cancel()
			if w, b := wcloses.Load(), bcloses.Load(); w != 1 || b != 1 {
				t.Errorf("after app.Stop: writer closed %d, batcher closed %d; want 1 and 1", w, b)
			}
			if got, _ := flushErr.Load().(string); got != "<nil>" {
				t.Errorf("the batch's flush through the writer pool failed: %s; want nil (writer stops after batcher, which was built from it)", got)
			}
			close(release)
			app.VerifyNoLeaks()
		})
	}
}

// "A pool takes one Events option": a second one is refused by fx.New, naming
// it — or both see the events. Silently dropping one (the Recorder's, or the
// app's own metrics) is neither.
func TestAttack15AcceptSecondEventsOptionIsNotSilentlyDropped(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var mine atomic.Int32
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a15Tx]("twoevents", workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() *a15Tx { return &a15Tx{} })),
			rec.Option(),
			workerpool.Events(func(workerpool.Event) { mine.Add(1) })),
		fx.Invoke(func(*workerpool.Pool[*a15Tx]) {}))
	if err := app.Err(); err != nil {
		if !strings.Contains(err.Error(), "twoevents") || !strings.Contains(err.Error(), "Events") {
			t.Errorf("error does not name the pool and the option: %v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r, m := len(rec.Events()), mine.Load(); r == 0 || m == 0 {
		t.Errorf("fx.New accepted two Events options and one was silently dropped: recorder saw %d events, the other hook %d", r, m)
	}
}

// Each cleanup of a stop gets a context that ends at nine tenths of the
// budget, leaving the last tenth to the hooks after the pool; the rollback of
// a start without a deadline gets one that ends after CloseTimeout.
func TestAttack15AcceptCleanupContextsAreBounded(t *testing.T) {
	var mu sync.Mutex
	var deadlines []time.Time
	var missing int
	cleanup := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := ctx.Deadline(); ok {
			deadlines = append(deadlines, d)
		} else {
			missing++
		}
		return nil
	}
	mk := func(fail bool) *fxpooltest.App {
		return fxpooltest.New(t, fx.Supply(zap.NewNop()),
			workerpool.Provide[*a15Tx]("bounded", workerpool.Workers(2), workerpool.CloseTimeout(time.Hour),
				workerpool.Resources(
					resources.PerWorker(func() (*a15Conn, func(context.Context) error, error) { return &a15Conn{}, cleanup, nil }),
					resources.PerWorker(func(w resources.Worker, _ *a15Conn) (*a15Tx, error) {
						if fail && w.ID == 1 {
							return nil, errors.New("no tx")
						}
						return &a15Tx{}, nil
					}),
				)),
			fx.Invoke(func(*workerpool.Pool[*a15Tx]) {}))
	}
	// a stop with a 20 s budget
	app := mk(false).RequireStart()
	stopDeadline := time.Now().Add(20 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), stopDeadline)
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	app.VerifyNoLeaks()
	mu.Lock()
	if missing != 0 || len(deadlines) != 2 {
		t.Fatalf("stop: %d cleanups without a deadline, %d with", missing, len(deadlines))
	}
	for _, d := range deadlines {
		// nine tenths of ~20 s: at least a second before the stop's deadline
		if !d.Before(stopDeadline.Add(-time.Second)) {
			t.Errorf("a stop's cleanup ends %v before the stop's deadline; want the last tenth (~2 s) left", stopDeadline.Sub(d))
		}
	}
	deadlines, missing = nil, 0
	mu.Unlock()

	// a failed start without a deadline: its rollback is bounded by CloseTimeout (1 h)
	app = mk(true)
	before := time.Now()
	if err := app.Start(context.Background()); err == nil {
		t.Fatal("start succeeded")
	}
	app.VerifyNoLeaks()
	mu.Lock()
	defer mu.Unlock()
	if missing != 0 || len(deadlines) == 0 {
		t.Fatalf("rollback: %d cleanups without a deadline, %d with", missing, len(deadlines))
	}
	for _, d := range deadlines {
		if d.Before(before.Add(59*time.Minute)) || d.After(time.Now().Add(time.Hour)) {
			t.Errorf("a rollback's cleanup ends in %v; want about CloseTimeout (1h)", d.Sub(before))
		}
	}
}

// A start whose budget runs out while worker 1 is still opening: OnStart
// returns the pool's own error before fx gives up — naming the pool, the
// worker still opening and the resource it is stuck in — and what had opened
// is closed by the time Start returns.
func TestAttack15AcceptStartOutOfBudgetNamesTheStuckOpen(t *testing.T) {
	var opens, closes atomic.Int32
	app := fxpooltest.New(t, fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Tx]("budget", workerpool.Workers(3),
			workerpool.Resources(
				resources.PerWorker(func() (*a15Conn, func(), error) {
					opens.Add(1)
					return &a15Conn{}, func() { closes.Add(1) }, nil
				}),
				resources.PerWorker(func(ctx context.Context, w resources.Worker, _ *a15Conn) (*a15Tx, error) {
					if w.ID == 1 {
						<-ctx.Done()
						return nil, context.Cause(ctx)
					}
					return &a15Tx{}, nil
				}, resources.Name("slowtx")),
			)),
		fx.Invoke(func(*workerpool.Pool[*a15Tx]) {}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := app.Start(ctx)
	if err == nil {
		t.Fatal("start succeeded")
	}
	o, c := opens.Load(), closes.Load()
	for _, s := range []string{"budget", "worker 1", "slowtx"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("start error does not name %q: %v", s, err)
		}
	}
	if o != 3 || c != 3 {
		t.Errorf("when Start returned: %d conns opened, %d closed; want 3 and 3", o, c)
	}
	app.VerifyNoLeaks()
}

// A Pool.Stop while the pool starts makes the start give up: the start fails
// with ErrClosed, and the stop returns once the rollback is over.
func TestAttack15AcceptStopDuringStartRollsBack(t *testing.T) {
	var opens, closes atomic.Int32
	entered := make(chan struct{})
	var once sync.Once
	var pool *workerpool.Pool[*a15Tx]
	app := fxpooltest.New(t, fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Tx]("interrupted", workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func() (*a15Conn, func(), error) {
					opens.Add(1)
					return &a15Conn{}, func() { closes.Add(1) }, nil
				}),
				resources.PerWorker(func(ctx context.Context, w resources.Worker, _ *a15Conn) (*a15Tx, error) {
					if w.ID == 0 {
						once.Do(func() { close(entered) })
						<-ctx.Done()
						return nil, context.Cause(ctx)
					}
					return &a15Tx{}, nil
				}),
			)),
		fx.Populate(&pool))
	startErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		startErr <- app.Start(ctx)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the open never began")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopErr := pool.Stop(ctx, workerpool.Drain)
	if o, c := opens.Load(), closes.Load(); o != c {
		t.Errorf("when Stop returned: %d opened, %d closed (stop error %v)", o, c, stopErr)
	}
	select {
	case err := <-startErr:
		if !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("start = %v; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the start did not give up")
	}
	_ = app.Stop(ctx)
	app.VerifyNoLeaks()
}
