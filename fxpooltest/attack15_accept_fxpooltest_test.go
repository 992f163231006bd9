package fxpooltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type (
	a15Conn struct{ closes *atomic.Int32 }
	a15Buf  struct{}
	a15Ctx  struct{ closes *atomic.Int32 }
	a15Deps struct {
		fx.In
		C *a15Conn
		W resources.Worker
	}
)

func (c *a15Conn) Close() error               { c.closes.Add(1); return nil }
func (c *a15Ctx) Close(context.Context) error { c.closes.Add(1); return nil }

func a15ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func a15until(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The recorder accepts a real pool shrunk and grown with Resize: a worker
// added back in a slot it left is a new set of resources, and the recorder's
// view — each (worker, generation) opened once and closed once — holds.
func TestAttack15AcceptRecorderOnResizeDownAndUp(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var closes atomic.Int32
	var opens atomic.Int32
	var pool *workerpool.Pool[a15Deps]
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[a15Deps]("resized",
			workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(func() *a15Conn { opens.Add(1); return &a15Conn{closes: &closes} })),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	ctx := a15ctx(t)
	if err := pool.Resize(1); err != nil {
		t.Fatal(err)
	}
	a15until(t, func() bool { return closes.Load() == 2 }, "two workers to retire")
	if err := pool.Resize(3); err != nil {
		t.Fatal(err)
	}
	a15until(t, func() bool { return pool.Stats().Workers == 3 }, "three workers again")
	for range 20 {
		if err := pool.Do(ctx, func(context.Context, a15Deps) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	app.RequireStop()
	ft := &fakeT{}
	rec.Verify(ft)
	if errs := ft.errors(); len(errs) > 0 {
		t.Errorf("Verify on a correct pool reported: %q", errs)
	}
	if o, c := opens.Load(), closes.Load(); o != 5 || c != 5 {
		t.Errorf("opened %d, closed %d; want 5 and 5", o, c)
	}
	type key struct{ id, gen int }
	seen := map[key]int{}
	for _, e := range rec.Events() {
		if wo, ok := e.(workerpool.WorkerOpened); ok && wo.Err == nil {
			seen[key{wo.Worker.ID, wo.Worker.Generation}]++
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("worker %d generation %d opened %d times: a generation names one set of resources", k.id, k.gen, n)
		}
	}
}

// fx rolls back a failed start by stopping what had started: the app-scoped
// store's OnStop marks it. The pool rolled back itself before; Verify finds
// nothing wrong.
func TestAttack15AcceptMarkAfterAFailedStartVerifies(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var closes atomic.Int32
	var storeStopped atomic.Bool
	type store struct{}
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		fx.Provide(func(lc fx.Lifecycle) *store {
			lc.Append(fx.Hook{
				OnStart: func(context.Context) error { return nil },
				OnStop:  func(context.Context) error { storeStopped.Store(true); rec.Mark("store"); return nil },
			})
			return &store{}
		}),
		workerpool.Provide[*a15Conn]("rollback",
			workerpool.Workers(3),
			workerpool.StartConcurrency(1),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
				func(*store) *a15Conn { return &a15Conn{closes: &closes} },
				fxpooltest.OnOpen(3, fxpooltest.Fail),
			))),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Conn]) {}),
	)
	err := app.Start(a15ctx(t))
	if !errors.Is(err, fxpooltest.ErrInjected) {
		t.Fatalf("Start = %v; want the injected fault", err)
	}
	app.VerifyNoLeaks()
	ft := &fakeT{}
	rec.Verify(ft)
	if errs := ft.errors(); len(errs) > 0 {
		t.Errorf("Verify after a correct rollback reported: %q", errs)
	}
	if n := closes.Load(); n != 2 {
		t.Errorf("%d closes; want 2 (the two that opened)", n)
	}
	if !storeStopped.Load() {
		t.Error("fx did not stop the store whose start had succeeded")
	}
}

// Verify reports an empty recorder, a Mark before the pool stopped, and a
// resource closed twice.
func TestAttack15AcceptVerifyReportsWhatIsBroken(t *testing.T) {
	ft := &fakeT{}
	fxpooltest.NewRecorder().Verify(ft)
	if len(ft.errors()) == 0 {
		t.Error("Verify of a recorder that saw no event reported nothing")
	}

	w := resources.Worker{Pool: "p", ID: 0}
	rec := fxpooltest.NewRecorder()
	rec.Record(workerpool.PoolStarted{Pool: "p", Workers: 1})
	rec.Record(workerpool.ResourceOpened{Resource: "conn", Worker: w})
	rec.Record(workerpool.WorkerOpened{Worker: w})
	rec.Mark("db")
	rec.Record(workerpool.ResourceClosed{Resource: "conn", Worker: w, Closed: true})
	rec.Record(workerpool.ResourceClosed{Resource: "conn", Worker: w, Closed: true})
	rec.Record(workerpool.WorkerClosed{Worker: w})
	rec.Record(workerpool.PoolStopped{Pool: "p"})
	ft = &fakeT{}
	rec.Verify(ft)
	errs := strings.Join(ft.errors(), "\n")
	if !strings.Contains(errs, "db") {
		t.Errorf("Verify did not report the Mark before the pool stopped: %q", errs)
	}
	if !strings.Contains(errs, "conn") {
		t.Errorf("Verify did not report conn closed twice: %q", errs)
	}
}

// A resource with nothing to close opens without a close: with NoCleanup,
// Verify accepts it; the resource with a Close beside it is still checked.
func TestAttack15AcceptNoCleanupOnARealPool(t *testing.T) {
	run := func(noCleanup bool) []string {
		rec := fxpooltest.NewRecorder()
		if noCleanup {
			rec.NoCleanup("*fxpooltest_test.a15Buf")
		}
		var closes atomic.Int32
		type deps struct {
			fx.In
			C *a15Conn
			B *a15Buf
		}
		app := fxpooltest.New(t,
			fx.Supply(zap.NewNop()),
			workerpool.Provide[deps]("plain",
				workerpool.Workers(2),
				workerpool.Resources(
					resources.PerWorker(func() *a15Conn { return &a15Conn{closes: &closes} }),
					resources.PerWorker(func(*a15Conn) *a15Buf { return &a15Buf{} }),
				),
				rec.Option(),
			),
			fx.Invoke(func(*workerpool.Pool[deps]) {}),
		).RequireStart()
		app.RequireStop()
		ft := &fakeT{}
		rec.Verify(ft)
		return ft.errors()
	}
	if errs := run(true); len(errs) > 0 {
		t.Errorf("with NoCleanup, Verify reported: %q", errs)
	}
}

// The nth open panics: the start fails with an error that errors.Is finds
// as ErrInjected and errors.As as a *hooks.PanicError inside a
// *resources.OpenError naming the resource by its default name; what opened
// closed; nothing leaked.
func TestAttack15AcceptInjectedPanicIsFoundEverywhere(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var closes, opens atomic.Int32
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Conn]("panics",
			workerpool.Workers(3),
			workerpool.StartConcurrency(1),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
				func() (*a15Conn, error) { opens.Add(1); return &a15Conn{closes: &closes}, nil },
				fxpooltest.OnOpen(2, fxpooltest.Panic),
			))),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Conn]) {}),
	)
	err := app.Start(a15ctx(t))
	if err == nil {
		t.Fatal("start succeeded")
	}
	if !errors.Is(err, fxpooltest.ErrInjected) {
		t.Errorf("errors.Is(err, ErrInjected) = false: %v", err)
	}
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("no *hooks.PanicError: %v", err)
	}
	var oe *resources.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("no *resources.OpenError: %v", err)
	}
	if oe.Resource != "*fxpooltest_test.a15Conn" {
		t.Errorf("OpenError.Resource = %q; want the default name *fxpooltest_test.a15Conn", oe.Resource)
	}
	app.VerifyNoLeaks()
	rec.Verify(t)
	if o, c := opens.Load(), closes.Load(); o < 1 || o != c {
		t.Errorf("%d opened, %d closed; want every one that opened closed", o, c)
	}
}

// A resource with a Close(context.Context) method whose close is faulted is
// closed once by the wrapper — not also by PerWorker — and the stop's error
// finds the fault.
func TestAttack15AcceptInjectedCloseFaultClosesOnce(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var closes atomic.Int32
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Ctx]("ctxclose",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
				func(w resources.Worker) *a15Ctx { return &a15Ctx{closes: &closes} },
				fxpooltest.OnClose(1, fxpooltest.Fail),
				fxpooltest.OnClose(2, fxpooltest.Panic),
			))),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Ctx]) {}),
	).RequireStart()
	err := app.Stop(a15ctx(t))
	if !errors.Is(err, fxpooltest.ErrInjected) {
		t.Errorf("Stop = %v; want ErrInjected", err)
	}
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("Stop = %v; want the panic of the second close", err)
	}
	app.VerifyNoLeaks()
	rec.Verify(t)
	if n := closes.Load(); n != 2 {
		t.Errorf("Close ran %d times; want 2 (once per worker)", n)
	}
}

// A rebuild whose first open fails retries into the same generation: the
// failed attempt does not use up a number. Verify holds.
func TestAttack15AcceptFailedReopenKeepsTheGeneration(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var closes atomic.Int32
	var pool *workerpool.Pool[a15Deps]
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[a15Deps]("reopen",
			workerpool.Workers(1),
			workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
				func() *a15Conn { return &a15Conn{closes: &closes} },
				fxpooltest.OnOpen(2, fxpooltest.Fail),
			))),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	ctx := a15ctx(t)
	err := pool.Do(ctx, func(context.Context, a15Deps) error { return fmt.Errorf("lost: %w", resources.ErrBroken) })
	if !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("Do = %v; want the task's ErrBroken", err)
	}
	gen := -1
	if err := pool.Do(ctx, func(_ context.Context, d a15Deps) error { gen = d.W.Generation; return nil }); err != nil {
		t.Fatal(err)
	}
	if gen != 1 {
		t.Errorf("after a failed reopen and its retry, the task ran on generation %d; want 1", gen)
	}
	app.RequireStop()
	rec.Verify(t)
	if n := closes.Load(); n != 2 {
		t.Errorf("%d closes; want 2", n)
	}
	var gens []string
	for _, e := range rec.Events() {
		if wo, ok := e.(workerpool.WorkerOpened); ok {
			gens = append(gens, fmt.Sprintf("%d:%v", wo.Worker.Generation, wo.Err != nil))
		}
	}
	if strings.Join(gens, " ") != "0:false 1:true 1:false" {
		t.Errorf("WorkerOpened generations:failed = %q; want [0:false 1:true 1:false]", gens)
	}
}

// A Hang on open under a start budget of a few ms: the start fails, the
// other workers' resources close once each, and no goroutine is left.
func TestAttack15AcceptInjectedHangUnderATightStart(t *testing.T) {
	for i := range 10 {
		rec := fxpooltest.NewRecorder()
		var closes, opens atomic.Int32
		app := fxpooltest.New(t,
			fx.Supply(zap.NewNop()),
			workerpool.Provide[*a15Conn]("hangs",
				workerpool.Workers(3),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
					func() *a15Conn { opens.Add(1); return &a15Conn{closes: &closes} },
					fxpooltest.OnOpen(1, fxpooltest.Hang),
				))),
				rec.Option(),
			),
			fx.Invoke(func(*workerpool.Pool[*a15Conn]) {}),
		)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(2+i)*time.Millisecond)
		err := app.Start(ctx)
		cancel()
		if err == nil {
			t.Fatalf("iteration %d: start succeeded though an open hangs", i)
		}
		deadline := time.Now().Add(10 * time.Second)
		// fx skips the pool's OnStart if the budget is gone before it: then
		// no event at all.
		for !(closes.Load() == opens.Load() && (len(rec.Events()) == 0 || pool0Stopped(rec))) {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: start = %v; after 10 s, opened %d, closed %d, events %+v", i, err, opens.Load(), closes.Load(), rec.Events())
			}
			time.Sleep(time.Millisecond)
		}
		app.VerifyNoLeaks() // waits for the goroutines of the start to end
		if o, c := opens.Load(), closes.Load(); o != c {
			t.Errorf("iteration %d: opened %d, closed %d", i, o, c)
		}
		if len(rec.Events()) > 0 {
			rec.Verify(t)
		}
	}
}

func pool0Stopped(rec *fxpooltest.Recorder) bool {
	for _, e := range rec.Events() {
		if _, ok := e.(workerpool.PoolStarted); ok {
			return true
		}
	}
	return false
}

// The clock: a timer fires once the clock has moved its whole d, in due
// order, once; a stopped one never; Stop reports whether it prevented the
// call; WaitTimers counts only pending timers.
func TestAttack15AcceptClockContract(t *testing.T) {
	c := fxpooltest.NewClock()
	t0 := c.Now()
	var mu sync.Mutex
	var fired []string
	note := func(s string) func() {
		return func() { mu.Lock(); fired = append(fired, s); mu.Unlock() }
	}
	get := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(fired, ",") }
	late := c.AfterFunc(3*time.Second, note("late"))
	early := c.AfterFunc(time.Second, note("early"))
	stopped := c.AfterFunc(2*time.Second, note("stopped"))
	if !stopped.Stop() {
		t.Error("Stop of a pending timer returned false")
	}
	if stopped.Stop() {
		t.Error("a second Stop returned true")
	}
	if err := c.WaitTimers(a15ctx(t), 2); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeoutCause(context.Background(), 20*time.Millisecond, errors.New("not three"))
	if err := c.WaitTimers(short, 3); err == nil || err.Error() != "not three" {
		t.Errorf("WaitTimers(3) with two pending = %v; want the context's cause (a stopped timer is not pending)", err)
	}
	cancel()
	c.Add(999 * time.Millisecond)
	if got := get(); got != "" {
		t.Errorf("fired %q before their time", got)
	}
	c.Add(5 * time.Second)
	if got := get(); got != "early,late" {
		t.Errorf("fired %q; want early,late", got)
	}
	if early.Stop() || late.Stop() {
		t.Error("Stop of a fired timer returned true")
	}
	c.Add(time.Hour)
	if got := get(); got != "early,late" {
		t.Errorf("timers fired again: %q", got)
	}
	if d := c.Now().Sub(t0); d != time.Hour+5*time.Second+999*time.Millisecond {
		t.Errorf("Now moved %v", d)
	}
	if err := c.WaitTimers(short, 0); err != nil {
		t.Errorf("WaitTimers(0) = %v; want nil at once", err)
	}
}

// RequireStop fails the test at once on a failed stop, after reporting it.
func TestAttack15AcceptRequireStopFailsNowOnAStopError(t *testing.T) {
	ft := &fakeT{}
	errClose := errors.New("flush failed")
	app := fxpooltest.New(ft,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Buf]("stopfails",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() (*a15Buf, func() error, error) {
				return &a15Buf{}, func() error { return errClose }, nil
			})),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Buf]) {}),
	).RequireStart()
	if !failsNow(app.RequireStop) {
		t.Error("RequireStop did not call FailNow on a failed stop")
	}
	if errs := strings.Join(ft.errors(), "\n"); !strings.Contains(errs, "flush failed") {
		t.Errorf("RequireStop did not report the stop's error: %q", errs)
	}
}

// The leak check reports a goroutine the app's resources left running, and
// not one that ran before New.
type helperT struct {
	fakeT
	helpers atomic.Int32
}

func (h *helperT) Helper() { h.helpers.Add(1) }

func TestAttack15AcceptLeakCheckAndHelper(t *testing.T) {
	before := make(chan struct{})
	go func() { <-before }()
	defer close(before)

	ht := &helperT{}
	leaked := make(chan struct{})
	app := fxpooltest.New(ht,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[*a15Buf]("leaky",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() (*a15Buf, func(), error) {
				return &a15Buf{}, func() { go func() { <-leaked }() }, nil
			})),
		),
		fx.Invoke(func(*workerpool.Pool[*a15Buf]) {}),
	).RequireStart()
	app.RequireStop()
	errs := strings.Join(ht.errors(), "\n")
	close(leaked)
	if !strings.Contains(errs, "TestAttack15AcceptLeakCheckAndHelper") {
		t.Errorf("the leaked goroutine was not reported: %q", errs)
	}
	if strings.Contains(errs, "TestAttack15AcceptLeakCheckAndHelper.func1(") {
		t.Errorf("a goroutine started before New was reported: %q", errs)
	}
	if ht.helpers.Load() == 0 {
		t.Error("a TB with a Helper method was never told Helper")
	}
}

// WaitTimers wakes up for a timer set after it began waiting; Add runs what
// came due on the caller's goroutine before it returns; a Stop racing an Add
// either prevents the call (and says so) or does not (and the call happens),
// never both, never neither.
func TestAttack15AcceptClockConcurrency(t *testing.T) {
	c := fxpooltest.NewClock()
	waited := make(chan error, 1)
	go func() { waited <- c.WaitTimers(a15ctx(t), 2) }()
	time.Sleep(5 * time.Millisecond)
	var fired atomic.Int32
	c.AfterFunc(time.Second, func() { fired.Add(1) })
	go c.AfterFunc(time.Second, func() { fired.Add(1) })
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("WaitTimers = %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("WaitTimers missed timers set while it waited")
	}
	c.Add(time.Second)
	if n := fired.Load(); n != 2 {
		t.Errorf("after Add returned, %d of 2 due functions had run", n)
	}

	for i := range 500 {
		c := fxpooltest.NewClock()
		var calls atomic.Int32
		tm := c.AfterFunc(time.Millisecond, func() { calls.Add(1) })
		var stopped bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); stopped = tm.Stop() }()
		go func() { defer wg.Done(); c.Add(time.Millisecond) }()
		wg.Wait()
		if n := calls.Load(); stopped && n != 0 || !stopped && n != 1 {
			t.Fatalf("race %d: Stop = %v and the function ran %d times", i, stopped, n)
		}
	}
}

// Fault and Kind print as written.
func TestAttack15AcceptFaultStrings(t *testing.T) {
	for _, tc := range []struct {
		got  fmt.Stringer
		want string
	}{
		{fxpooltest.OnClose(3, fxpooltest.Hang), "fxpooltest.OnClose(3, fxpooltest.Hang)"},
		{fxpooltest.OnOpen(1, fxpooltest.Panic), "fxpooltest.OnOpen(1, fxpooltest.Panic)"},
		{fxpooltest.Fail, "fxpooltest.Fail"},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("String() = %q; want %q", s, tc.want)
		}
	}
	for _, bad := range []func(){
		func() { fxpooltest.OnOpen(0, fxpooltest.Fail) },
		func() { fxpooltest.OnClose(-1, fxpooltest.Fail) },
		func() { fxpooltest.OnOpen(1, fxpooltest.Kind(0)) },
		func() { fxpooltest.OnClose(1, fxpooltest.Kind(42)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a bad fault did not panic, as documented")
				}
			}()
			bad()
		}()
	}
}
