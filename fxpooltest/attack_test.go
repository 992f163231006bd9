package fxpooltest_test

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

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

func a2wk(pool string, id, gen int) resources.Worker {
	return resources.Worker{Pool: pool, ID: id, Generation: gen}
}

func a2verify(rec *fxpooltest.Recorder) []string {
	var ft fakeT
	rec.Verify(&ft)
	return ft.errors()
}

func a2record(rec *fxpooltest.Recorder, steps ...any) {
	for _, s := range steps {
		switch s := s.(type) {
		case mark:
			rec.Mark(string(s))
		case workerpool.Event:
			rec.Record(s)
		}
	}
}

// Events name their pool: an open in pool p and a close in pool q of the
// same worker/generation/resource are two violations, not one healthy pair.
func TestAttack2VerifyKeepsPoolsApart(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec,
		workerpool.ResourceOpened{Resource: "A", Worker: a2wk("p", 0, 0)},
		workerpool.ResourceClosed{Resource: "A", Worker: a2wk("q", 0, 0), Closed: true},
	)
	if got := a2verify(rec); len(got) < 2 {
		t.Errorf("Verify reported %d errors, want >= 2 (p's A open, q's A closed unopened):\n%s", len(got), strings.Join(got, "\n"))
	}
}

// A close recorded in the wrong generation does not close the open one.
func TestAttack2VerifyCloseInWrongGeneration(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec, opened("A", 0, 0), closed("A", 0, 1))
	if got := a2verify(rec); len(got) < 2 {
		t.Errorf("Verify reported %d errors, want >= 2:\n%s", len(got), strings.Join(got, "\n"))
	}
}

// A resource opened twice in one generation without a failed open in
// between, and closed once: the first instance leaked.
func TestAttack2VerifyReopenWithoutClose(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec, opened("A", 0, 0), opened("A", 0, 0), workerOpened(0, 0), closed("A", 0, 0), workerClosed(0, 0))
	if got := a2verify(rec); len(got) == 0 {
		t.Errorf("Verify reported nothing for a resource opened twice and closed once")
	}
}

// The retry of a generation closes in the wrong order: still reported.
func TestAttack2VerifyOrderAfterRetry(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec,
		opened("A", 0, 0), openFailed("B", 0, 0), closed("A", 0, 0), workerOpenFailed(0, 0),
		opened("A", 0, 0), opened("B", 0, 0), workerOpened(0, 0),
		closed("A", 0, 0), closed("B", 0, 0), workerClosed(0, 0),
	)
	got := a2verify(rec)
	if len(got) != 1 || !strings.Contains(got[0], `"A" closed before "B"`) {
		t.Errorf("Verify = %q, want one error about A closed before B", got)
	}
}

// A mark before the pool even started is reported (the pool stopped after it).
func TestAttack2VerifyMarkBeforeStart(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec, append([]any{mark("db")}, healthy...)...)
	if got := a2verify(rec); len(got) == 0 {
		t.Errorf("Verify reported nothing for an app-scoped close before the pool started")
	}
}

// A close that failed is still a close; a close after its worker's
// generation closed is reported.
func TestAttack2VerifyCloseAfterWorkerClosed(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	a2record(rec, opened("A", 0, 0), workerOpened(0, 0), workerClosed(0, 0), closed("A", 0, 0))
	if got := a2verify(rec); len(got) == 0 {
		t.Errorf("Verify reported nothing for a resource closed after its worker's generation closed")
	}
	rec = fxpooltest.NewRecorder()
	a2record(rec, opened("A", 0, 0), workerOpened(0, 0),
		workerpool.ResourceClosed{Resource: "A", Worker: wk(0, 0), Closed: true, Err: errBoom}, workerClosed(0, 0))
	if got := a2verify(rec); len(got) != 0 {
		t.Errorf("Verify reported a failed close as a violation: %q", got)
	}
}

// Real pools that rebuild, recycle, resize and grow must verify clean.

type A2Conn struct{ closed atomic.Int32 }

func (c *A2Conn) Close() error {
	if c.closed.Add(1) != 1 {
		return errors.New("closed twice")
	}
	return nil
}

type A2Batch struct{ conn *A2Conn }

type A2Deps struct {
	fx.In
	Conn  *A2Conn
	Batch *A2Batch
}

type A2Store struct{}

func a2Pool(rec *fxpooltest.Recorder, live *atomic.Int64, name string, opts ...workerpool.Option) fx.Option {
	openConn := func() (*A2Conn, func() error, error) {
		live.Add(1)
		c := &A2Conn{}
		return c, func() error { live.Add(-1); return c.Close() }, nil
	}
	openBatch := func(_ *A2Store, c *A2Conn) (*A2Batch, func(context.Context) error, error) {
		live.Add(1)
		return &A2Batch{c}, func(context.Context) error {
			live.Add(-1)
			if c.closed.Load() != 0 {
				return errors.New("batch closed after its conn")
			}
			return nil
		}, nil
	}
	return workerpool.Provide[A2Deps](name, append([]workerpool.Option{
		workerpool.Resources(resources.PerWorker(openConn), resources.PerWorker(openBatch)),
		rec.Option(),
		workerpool.Named(),
	}, opts...)...)
}

type a2Pools struct {
	fx.In
	Recycle *workerpool.Pool[A2Deps] `name:"recycle"`
	Resize  *workerpool.Pool[A2Deps] `name:"resize"`
	Elastic *workerpool.Pool[A2Deps] `name:"elastic"`
}

func TestAttack2VerifyCleanOnRealPools(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	clock := fxpooltest.NewClock()
	var live atomic.Int64
	var ps a2Pools
	app := newApp(t,
		fx.Provide(func(lc fx.Lifecycle) *A2Store {
			lc.Append(fx.StopHook(func() { rec.Mark("store") }))
			return &A2Store{}
		}),
		a2Pool(rec, &live, "recycle", workerpool.Workers(2), workerpool.MaxTasksPerWorker(2), workerpool.RestartBackoff(time.Millisecond, time.Millisecond)),
		a2Pool(rec, &live, "resize", workerpool.Workers(2)),
		a2Pool(rec, &live, "elastic", workerpool.Elastic(0, 3, time.Minute), clock.Option()),
		fx.Populate(&ps),
	).RequireStart()
	ctx := t.Context()

	// recycle: plain tasks, a panic, a Goexit and ErrBroken rebuilds.
	for i := range 12 {
		err := ps.Recycle.Do(ctx, func(context.Context, A2Deps) error {
			switch i % 4 {
			case 1:
				panic("boom")
			case 2:
				runtime.Goexit()
			case 3:
				return fmt.Errorf("x: %w", resources.ErrBroken)
			}
			return nil
		})
		_ = err
	}
	// resize: down, up, down.
	for _, n := range []int{1, 3, 1, 2} {
		if err := ps.Resize.Resize(n); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := ps.Resize.Do(ctx, func(context.Context, A2Deps) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	// elastic: grow to 3 with blocked tasks, retire, grow again.
	for round := range 2 {
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			if err := ps.Elastic.GoReport(ctx, func(context.Context, A2Deps) error { <-release; return nil },
				func(workerpool.Outcome, error) { wg.Done() }); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for ps.Elastic.Stats().Busy < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if b := ps.Elastic.Stats().Busy; b != 3 {
			t.Fatalf("round %d: elastic busy %d, want 3", round, b)
		}
		close(release)
		wg.Wait()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := clock.WaitTimers(wctx, 3); err != nil {
			cancel()
			t.Fatalf("round %d: idle timers: %v", round, err)
		}
		cancel()
		clock.Add(2 * time.Minute)
		for ps.Elastic.Stats().Workers > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	app.RequireStop()
	if got := a2verify(rec); len(got) != 0 {
		t.Errorf("Verify reported %d false violations on correct pools:\n%s", len(got), strings.Join(got, "\n"))
	}
	if n := live.Load(); n != 0 {
		t.Errorf("%d resources still open", n)
	}
	var gens = map[resources.Worker]bool{}
	for _, e := range rec.Events() {
		if e, ok := e.(workerpool.WorkerOpened); ok && e.Err == nil && e.Worker.Pool == "elastic" {
			gens[e.Worker] = true
		}
	}
	if len(gens) < 6 {
		t.Errorf("elastic opened %d generations, want >= 6", len(gens))
	}
}

// Inject counts opens across generations: the 3rd open (gen 2) fails, the retry opens gen 2.
func TestAttack2InjectCountsAcrossGenerations(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[*A2Conn]
	open := func() (*A2Conn, error) { return &A2Conn{}, nil }
	app := newApp(t,
		workerpool.Provide[*A2Conn]("inj",
			workerpool.Workers(1), workerpool.MaxTasksPerWorker(1),
			workerpool.RestartBackoff(time.Millisecond, time.Millisecond),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(open, fxpooltest.OnOpen(3, fxpooltest.Fail), fxpooltest.OnOpen(3, fxpooltest.Panic), fxpooltest.OnClose(2, fxpooltest.Panic)))),
			rec.Option()),
		fx.Populate(&p),
	).RequireStart()
	for range 3 {
		if err := p.Do(t.Context(), func(context.Context, *A2Conn) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	app.RequireStop()
	if got := a2verify(rec); len(got) != 0 {
		t.Errorf("Verify: %q", got)
	}
	var opens []workerpool.ResourceOpened
	var closeErrs []error
	for _, e := range rec.Events() {
		switch e := e.(type) {
		case workerpool.ResourceOpened:
			opens = append(opens, e)
		case workerpool.ResourceClosed:
			closeErrs = append(closeErrs, e.Err)
		}
	}
	if len(opens) < 4 {
		t.Fatalf("%d opens, want >= 4", len(opens))
	}
	if o := opens[2]; o.Worker.Generation != 2 || !errors.Is(o.Err, fxpooltest.ErrInjected) {
		t.Errorf("3rd open = gen %d err %v, want gen 2 failing with ErrInjected", o.Worker.Generation, o.Err)
	} else {
		var pe *workerpool.PanicError
		if errors.As(o.Err, &pe) {
			t.Errorf("3rd open panicked, but OnOpen(3, Fail) came first: %v", o.Err)
		}
	}
	if o := opens[3]; o.Worker.Generation != 2 || o.Err != nil {
		t.Errorf("4th open = gen %d err %v, want the retry of gen 2", o.Worker.Generation, o.Err)
	}
	if len(closeErrs) < 2 || closeErrs[0] != nil || !errors.Is(closeErrs[1], fxpooltest.ErrInjected) {
		t.Errorf("close errors = %v, want the 2nd to wrap ErrInjected", closeErrs)
	}
}

// Inject keeps the resource's default name and calls Close exactly once.
func TestAttack2InjectKeepsNameAndCloses(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var made []*A2Conn
	var mu sync.Mutex
	open := func() (*A2Conn, error) {
		c := &A2Conn{}
		mu.Lock()
		made = append(made, c)
		mu.Unlock()
		return c, nil
	}
	var p *workerpool.Pool[*A2Conn]
	app := newApp(t,
		workerpool.Provide[*A2Conn]("inj", workerpool.Workers(2), workerpool.MaxTasksPerWorker(1),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(open))), rec.Option()),
		fx.Populate(&p),
	).RequireStart()
	for range 4 {
		_ = p.Do(t.Context(), func(context.Context, *A2Conn) error { return nil })
	}
	app.RequireStop()
	for _, e := range rec.Events() {
		if e, ok := e.(workerpool.ResourceOpened); ok && e.Resource != "*fxpooltest_test.A2Conn" {
			t.Errorf("resource name %q, want the default *fxpooltest_test.A2Conn", e.Resource)
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range made {
		if n := c.closed.Load(); n != 1 {
			t.Errorf("conn %d closed %d times, want 1", i, n)
		}
	}
	if got := a2verify(rec); len(got) != 0 {
		t.Errorf("Verify: %q", got)
	}
}

func TestAttack2ClockOrderStopAndReentry(t *testing.T) {
	c := fxpooltest.NewClock()
	var order []int
	start := c.Now()
	var inner atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.AfterFunc(3*time.Second, func() { order = append(order, 3) })
		c.AfterFunc(time.Second, func() {
			order = append(order, 1)
			_ = c.Now()                                          // re-entry must not deadlock
			c.AfterFunc(time.Hour, func() { inner.Store(true) }) // nor may arming a timer
		})
		c.AfterFunc(2*time.Second, func() { order = append(order, 2) })
		stopped := c.AfterFunc(2500*time.Millisecond, func() { order = append(order, 99) })
		if !stopped.Stop() {
			t.Error("Stop of a pending timer = false")
		}
		if stopped.Stop() {
			t.Error("second Stop = true")
		}
		c.Add(5 * time.Second)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Clock.Add deadlocked when a due function called the clock")
	}
	if fmt.Sprint(order) != "[1 2 3]" {
		t.Errorf("order = %v, want [1 2 3]", order)
	}
	if d := c.Now().Sub(start); d != 5*time.Second {
		t.Errorf("Now moved %v, want 5s", d)
	}
	// Exactly one timer pending: the hour-long one.
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitTimers(wctx, 1); err != nil {
		t.Errorf("WaitTimers(1) = %v", err)
	}
	cause := errors.New("cause")
	sctx, scancel := context.WithTimeoutCause(t.Context(), 50*time.Millisecond, cause)
	defer scancel()
	if err := c.WaitTimers(sctx, 2); err != cause {
		t.Errorf("WaitTimers(2) = %v, want ctx's cause", err)
	}
	c.Add(time.Hour)
	if !inner.Load() {
		t.Error("timer armed inside a due function never fired")
	}
	sctx2, scancel2 := context.WithTimeoutCause(t.Context(), 50*time.Millisecond, cause)
	defer scancel2()
	if err := c.WaitTimers(sctx2, 1); err != cause {
		t.Errorf("WaitTimers after every timer fired = %v, want ctx's cause", err)
	}
}

// A timer whose due time falls within one Add, armed by an earlier function
// of that Add, comes due too ("every function that has come due").
func TestAttack2ClockChainWithinOneAdd(t *testing.T) {
	c := fxpooltest.NewClock()
	var fired atomic.Int32
	c.AfterFunc(time.Second, func() {
		fired.Add(1)
		c.AfterFunc(time.Second, func() { fired.Add(1) })
	})
	done := make(chan struct{})
	go func() { defer close(done); c.Add(5 * time.Second) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Add deadlocked")
	}
	if n := fired.Load(); n != 2 {
		t.Errorf("%d functions fired, want 2 (the chained one was due at +2s of a +5s Add)", n)
	}
}
