package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Two pools: a writer pool W, and a batcher pool B whose per-worker batch
// writes through W when it opens and flushes through W when it closes, and
// whose tasks also submit to W. B is built from W, so B must stop (drain,
// flush) before W stops.
type a16lWConn struct {
	w      resources.Worker
	closed atomic.Bool
}
type a16lBatch struct {
	w      resources.Worker
	closed atomic.Bool
}
type a16lBDeps struct {
	fx.In
	Batch  *a16lBatch
	Writer *workerpool.Pool[*a16lWConn]
}

type a16lTwo struct {
	mu       sync.Mutex
	log      []string
	problems []string
	flushes  atomic.Int32
	writes   atomic.Int32
}

func (x *a16lTwo) add(s string) { x.mu.Lock(); x.log = append(x.log, s); x.mu.Unlock() }
func (x *a16lTwo) bad(format string, args ...any) {
	x.mu.Lock()
	x.problems = append(x.problems, fmt.Sprintf(format, args...))
	x.mu.Unlock()
}

func (x *a16lTwo) options(wp **workerpool.Pool[*a16lWConn], bp **workerpool.Pool[a16lBDeps], extra ...fx.Option) []fx.Option {
	write := func(ctx context.Context, p *workerpool.Pool[*a16lWConn], what string) error {
		return p.Do(ctx, func(_ context.Context, c *a16lWConn) error {
			if c.closed.Load() {
				x.bad("%s written on a closed writer conn", what)
			}
			x.writes.Add(1)
			return nil
		})
	}
	opts := []fx.Option{
		fx.NopLogger,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		workerpool.Provide[*a16lWConn]("writer",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*a16lWConn, func(), error) {
				c := &a16lWConn{w: w}
				return c, func() {
					x.add("writer closed")
					if c.closed.Swap(true) {
						x.bad("writer conn %v closed twice", w)
					}
				}, nil
			})),
		),
		workerpool.Provide[a16lBDeps]("batcher",
			workerpool.Workers(3),
			workerpool.QueueSize(16),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, p *workerpool.Pool[*a16lWConn], w resources.Worker) (*a16lBatch, func(context.Context) error, error) {
				if err := write(ctx, p, "open"); err != nil {
					x.bad("batch %v: writing at open: %v", w, err)
					return nil, nil, err
				}
				b := &a16lBatch{w: w}
				return b, func(ctx context.Context) error {
					if b.closed.Swap(true) {
						x.bad("batch %v flushed twice", w)
					}
					err := write(ctx, p, "flush")
					if err != nil {
						x.bad("batch %v: flush through the writer pool: %v", w, err)
					}
					x.flushes.Add(1)
					x.add("batch flushed")
					return err
				}, nil
			})),
		),
		fx.Populate(wp, bp),
	}
	return append(opts, extra...)
}

func (x *a16lTwo) check(t *testing.T) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range x.problems {
		t.Error(p)
	}
	lastFlush, firstWriterClose := -1, -1
	for i, s := range x.log {
		if s == "batch flushed" {
			lastFlush = i
		}
		if s == "writer closed" && firstWriterClose < 0 {
			firstWriterClose = i
		}
	}
	if n := x.flushes.Load(); n != 3 {
		t.Errorf("%d batches flushed, want 3", n)
	}
	if firstWriterClose < 0 {
		t.Errorf("writer pool never closed: %v", x.log)
	} else if lastFlush > firstWriterClose {
		t.Errorf("a batch flushed after a writer conn closed: %v", x.log)
	}
}

func TestA16lTwoPoolsBatcherStopsBeforeWriter(t *testing.T) {
	x := &a16lTwo{}
	var wp *workerpool.Pool[*a16lWConn]
	var bp *workerpool.Pool[a16lBDeps]
	app := fx.New(x.options(&wp, &bp)...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Queue tasks on the batcher that write through the writer pool; the
	// stop drains them first.
	release := make(chan struct{})
	var results sync.WaitGroup
	var taskErrs atomic.Int32
	for i := 0; i < 9; i++ {
		results.Add(1)
		if err := bp.GoReport(ctx, func(ctx context.Context, d a16lBDeps) error {
			<-release
			return d.Writer.Do(ctx, func(context.Context, *a16lWConn) error { return nil })
		}, func(o workerpool.Outcome, err error) {
			if o != workerpool.Succeeded {
				taskErrs.Add(1)
				x.bad("batcher task: %v %v", o, err)
			}
			results.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	a16lPoll(t, "the batcher to stop serving", func() bool { return !bp.Serving() })
	close(release)
	if err := a16lAwait(t, stopErr, "app.Stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	results.Wait()
	x.check(t)
}

// The same under StopGuard, with a hook that stops before both pools and
// takes the whole stop budget: the guard stops the batcher, then the writer,
// so every flush goes through; once app.Stop returns both pools refuse
// tasks and every resource is closed.
func TestA16lStopGuardStopsDependentPoolFirst(t *testing.T) {
	x := &a16lTwo{}
	var wp *workerpool.Pool[*a16lWConn]
	var bp *workerpool.Pool[a16lBDeps]
	slowBegan := make(chan struct{})
	app := fx.New(x.options(&wp, &bp,
		fx.Invoke(func(lc fx.Lifecycle, _ *workerpool.Pool[a16lBDeps]) {
			lc.Append(fx.StopHook(func(ctx context.Context) error {
				close(slowBegan)
				<-ctx.Done() // a graceful shutdown that overruns
				return ctx.Err()
			}))
		}),
		workerpool.StopGuard(),
	)...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := a16lCtx(3 * time.Second)
	defer cancel()
	err := app.Stop(ctx)
	<-slowBegan
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("stop: %v", err)
	}
	if wp.Serving() || bp.Serving() {
		t.Errorf("after app.Stop, writer serving %v, batcher serving %v", wp.Serving(), bp.Serving())
	}
	if err := bp.Do(sctx, func(context.Context, a16lBDeps) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("batcher Do after stop: %v", err)
	}
	x.check(t)
	x.mu.Lock()
	n := 0
	for _, s := range x.log {
		if s == "writer closed" {
			n++
		}
	}
	x.mu.Unlock()
	if n != 2 {
		t.Errorf("writer conns closed %d times, want 2", n)
	}
}

// StopGuard with the lifecycle harness: a slow hook that ignores the
// budget; the guarded pool closes every worker's chain exactly once before
// app.Stop returns, and the guard's stop of a pool with a hung task still
// names it and lets the rest close.
func TestA16lStopGuardClosesPoolBehindSlowHook(t *testing.T) {
	h := a16lNew()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(3)},
		fxpool.Module,
		fx.Invoke(func(lc fx.Lifecycle, _ *workerpool.Pool[a16lDeps]) {
			lc.Append(fx.StopHook(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}))
		}),
		workerpool.StopGuard(),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	taskDone := make(chan error, 1)
	go func() {
		taskDone <- p.Do(sctx, func(ctx context.Context, d a16lDeps) error {
			close(running)
			<-ctx.Done()
			return context.Cause(ctx)
		})
	}()
	<-running
	ctx, cancel := a16lCtx(3 * time.Second)
	defer cancel()
	_ = app.Stop(ctx)
	es := h.snapshot()
	if left := a16lOpenNow(es); len(left) != 0 {
		t.Errorf("after app.Stop under StopGuard, still open: %v\n%s", left, h.dump())
	}
	if r := a16lAwait(t, taskDone, "the running task"); !errors.Is(r, workerpool.ErrClosed) {
		t.Errorf("running task's result: %v, want its context's cause ErrClosed", r)
	}
	if p.Serving() {
		t.Error("pool serving after app.Stop")
	}
	// fx skipped the store's OnStop (documented): the store was never
	// marked, so there is no ordering to check against it.
	h.checkLifecycle(t, true)
}
