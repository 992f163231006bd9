package workerpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Start opens each worker's chain in dependency order, stop closes it in
// reverse, exactly once, before the app-scoped store; one WorkerOpened and
// one WorkerClosed per worker; the recorder agrees.
func TestA16lOpenOrderCloseReverseExactlyOnce(t *testing.T) {
	h := a16lNew()
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(3), rec.Option()})
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	es := h.snapshot()
	if n := a16lCount(es, "open", "", -1); n != 9 {
		t.Fatalf("after Start returned, %d resources open, want 9 (3 workers x 3)\n%s", n, h.dump())
	}
	for i := 0; i < 30; i++ {
		if err := p.Do(ctx, func(_ context.Context, d a16lDeps) error { h.checkTask(d); return nil }); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	h.checkLifecycle(t, true)
	es = h.snapshot()
	if n := a16lCount(es, "close", "", -1); n != 9 {
		t.Errorf("closes: %d, want 9", n)
	}
	wo := a16lEvents[workerpool.WorkerOpened](h)
	wc := a16lEvents[workerpool.WorkerClosed](h)
	if len(wo) != 3 || len(wc) != 3 {
		t.Errorf("WorkerOpened %d, WorkerClosed %d; want 3 and 3", len(wo), len(wc))
	}
	seen := map[int]int{}
	for _, e := range wc {
		seen[e.Worker.ID]++
		if e.Err != nil {
			t.Errorf("WorkerClosed %v: %v", e.Worker, e.Err)
		}
	}
	for id := 0; id < 3; id++ {
		if seen[id] != 1 {
			t.Errorf("worker %d closed %d times", id, seen[id])
		}
	}
	if st := a16lEvents[workerpool.PoolStarted](h); len(st) != 1 || st[0].Err != nil {
		t.Errorf("PoolStarted: %+v", st)
	}
	if sp := a16lEvents[workerpool.PoolStopped](h); len(sp) != 1 || sp[0].Err != nil {
		t.Errorf("PoolStopped: %+v", sp)
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity().Workers after stop = %d, want 0", c.Workers)
	}
	rec.Verify(t)
}

// A diamond: D needs B and C, both need A. A closes after B and C, which
// close after D, in every worker; independent ones in any order.
type a16lDA struct{ closed atomic.Bool }
type a16lDB struct{ closed atomic.Bool }
type a16lDC struct{ closed atomic.Bool }
type a16lDD struct{ closed atomic.Bool }

func TestA16lDiamondClosesAfterEveryDependent(t *testing.T) {
	var mu sync.Mutex
	var order []string
	var bad []string
	logf := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	violate := func(s string) { mu.Lock(); bad = append(bad, s); mu.Unlock() }
	var pool *workerpool.Pool[*a16lDD]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
		workerpool.Provide[*a16lDD]("diamond",
			workerpool.Workers(4),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*a16lDA, func(), error) {
					a := &a16lDA{}
					logf("open A")
					return a, func() {
						logf("close A")
						if a.closed.Swap(true) {
							violate("A twice")
						}
					}, nil
				}),
				resources.PerWorker(func(a *a16lDA) (*a16lDB, func() error, error) {
					b := &a16lDB{}
					if a.closed.Load() {
						violate("B opened on a closed A")
					}
					return b, func() error {
						if a.closed.Load() {
							violate("B closed after A")
						}
						if b.closed.Swap(true) {
							violate("B twice")
						}
						logf("close B")
						return nil
					}, nil
				}),
				resources.PerWorker(func(ctx context.Context, a *a16lDA) (*a16lDC, func(context.Context) error, error) {
					c := &a16lDC{}
					return c, func(context.Context) error {
						if a.closed.Load() {
							violate("C closed after A")
						}
						if c.closed.Swap(true) {
							violate("C twice")
						}
						logf("close C")
						return nil
					}, nil
				}),
				resources.PerWorker(func(b *a16lDB, c *a16lDC) (*a16lDD, func(), error) {
					d := &a16lDD{}
					return d, func() {
						if b.closed.Load() || c.closed.Load() {
							violate("D closed after B or C")
						}
						if d.closed.Swap(true) {
							violate("D twice")
						}
						logf("close D")
					}, nil
				}),
			),
		),
		fx.Populate(&pool),
	)
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.Do(ctx, func(_ context.Context, d *a16lDD) error {
		if d.closed.Load() {
			violate("task got a closed D")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	counts := map[string]int{}
	for _, s := range order {
		counts[s]++
	}
	for _, s := range []string{"open A", "close A", "close B", "close C", "close D"} {
		if counts[s] != 4 {
			t.Errorf("%q happened %d times, want 4 (one per worker): %v", s, counts[s], order)
		}
	}
}

// A worker opens only what R needs: with R = *a16lB, C is never built.
func TestA16lOnlyWhatTheTaskNeedsOpens(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[*a16lB]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()), h.store(),
		workerpool.Provide[*a16lB]("partial", workerpool.Workers(2), h.resources(), workerpool.Events(h.event)),
		fx.Populate(&p),
	)
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Do(ctx, func(_ context.Context, b *a16lB) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	es := h.snapshot()
	if n := a16lCount(es, "try", "C", -1); n != 0 {
		t.Errorf("C was constructed %d times although the task parameter does not need it", n)
	}
	if a16lCount(es, "open", "B", -1) != 2 || a16lCount(es, "close", "B", -1) != 2 {
		t.Errorf("B opened/closed %d/%d, want 2/2", a16lCount(es, "open", "B", -1), a16lCount(es, "close", "B", -1))
	}
	h.checkLifecycle(t, true)
}

// A T with a Close method and no explicit cleanup is closed automatically,
// with the cleanup's context; a nil pointer, or an interface holding one, is
// not closed.
type a16lCloser struct {
	n        *atomic.Int32
	deadline *atomic.Bool
}

func (c *a16lCloser) Close(ctx context.Context) error {
	if c == nil {
		panic("Close called on a nil *a16lCloser")
	}
	c.n.Add(1)
	if _, ok := ctx.Deadline(); ok {
		c.deadline.Store(true)
	}
	return nil
}

type a16lNilPtr struct{}

func (c *a16lNilPtr) Close() error {
	if c == nil {
		panic("Close called on a nil *a16lNilPtr")
	}
	return nil
}

type a16lNilIface interface{ Close() error }

type a16lAutoDeps struct {
	fx.In
	C *a16lCloser
	P *a16lNilPtr
	I a16lNilIface
}

func TestA16lAutoCloseAndNilValues(t *testing.T) {
	var closes atomic.Int32
	var hadDeadline atomic.Bool
	var pool *workerpool.Pool[a16lAutoDeps]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
		workerpool.Provide[a16lAutoDeps]("auto",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func() (*a16lCloser, error) {
					return &a16lCloser{n: &closes, deadline: &hadDeadline}, nil
				}),
				resources.PerWorker(func() *a16lNilPtr { return nil }),
				resources.PerWorker(func() (a16lNilIface, error) {
					var p *a16lNilPtr
					return p, nil
				}),
			),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := pool.Do(context.Background(), func(context.Context, a16lAutoDeps) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := closes.Load(); n != 2 {
		t.Errorf("Close(ctx) called %d times, want 2 (one per worker)", n)
	}
	if !hadDeadline.Load() {
		t.Errorf("automatic Close(ctx) got a context without a deadline from a stop with a deadline")
	}
}

// An open that returns a value, a cleanup and an error: the value and the
// cleanup are ignored (nothing to close), what opened before is closed.
func TestA16lOpenErrorWithValueAndCleanupIgnored(t *testing.T) {
	h := a16lNew()
	var bogusCleanups atomic.Int32
	var pool *workerpool.Pool[*a16lB]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()), h.store(),
		workerpool.Provide[*a16lB]("bogus",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, s *a16lStore, w resources.Worker) (*a16lA, func(context.Context) error, error) {
					h.add(a16lEntry{op: "open", res: "A", w: w})
					return &a16lA{w: w}, func(context.Context) error {
						h.add(a16lEntry{op: "close", res: "A", w: w})
						return nil
					}, nil
				}, resources.Name("A")),
				resources.PerWorker(func(a *a16lA, w resources.Worker) (*a16lB, func() error, error) {
					return &a16lB{a: a, w: w}, func() error {
						bogusCleanups.Add(1)
						return nil
					}, errA16lInjected
				}, resources.Name("B")),
			),
			workerpool.Events(h.event),
		),
		fx.Populate(&pool),
	)
	err := app.Start(context.Background())
	if !errors.Is(err, errA16lInjected) {
		t.Fatalf("start error %v, want the constructor's", err)
	}
	var oe *resources.OpenError
	if !errors.As(err, &oe) || oe.Resource != "B" {
		t.Errorf("start error %v has no *resources.OpenError naming B", err)
	}
	if n := bogusCleanups.Load(); n != 0 {
		t.Errorf("the cleanup returned with an error was called %d times", n)
	}
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("after the failed Start returned, still open: %v\n%s", left, h.dump())
	}
	if err := pool.Do(context.Background(), func(context.Context, *a16lB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do after a failed start: %v, want ErrClosed", err)
	}
	_ = app.Stop(context.Background())
}
