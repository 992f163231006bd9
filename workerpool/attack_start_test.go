package workerpool_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type StA struct{}
type StB struct{}
type StDeps struct {
	fx.In
	B *StB
}

func stApp(l *ledger, bOpen func(ctx context.Context, w W) error, opts ...workerpool.Option) (*fx.App, **workerpool.Pool[StDeps]) {
	var p *workerpool.Pool[StDeps]
	all := append([]workerpool.Option{
		workerpool.Workers(4),
		workerpool.Resources(
			resources.PerWorker(func(w W) (*StA, func(), error) {
				l.add("open", "A", w)
				return &StA{}, func() { l.add("close", "A", w) }, nil
			}, resources.Name("alpha")),
			resources.PerWorker(func(ctx context.Context, _ *StA, w W) (*StB, func(), error) {
				if err := bOpen(ctx, w); err != nil {
					return nil, nil, err
				}
				l.add("open", "B", w)
				return &StB{}, func() { l.add("close", "B", w) }, nil
			}, resources.Name("bravo")),
		),
	}, opts...)
	app := fx.New(fx.NopLogger, workerpool.Provide[StDeps]("startpool", all...), fx.Populate(&p))
	return app, &p
}

var errDown = errors.New("server down")

// A failed open: the error names pool, worker, resource and cause; every
// opened resource is closed before Start returns; the pool refuses tasks.
func TestAttackFailedOpenErrorNamesEverything(t *testing.T) {
	l := newLedger()
	app, p := stApp(l, func(ctx context.Context, w W) error {
		if w.ID == 2 {
			return errDown
		}
		return nil
	})
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	err := app.Start(ctx)
	if !errors.Is(err, errDown) {
		t.Fatalf("Start = %v, want errDown", err)
	}
	var oe *resources.OpenError
	if !errors.As(err, &oe) || oe.Resource != "bravo" {
		t.Errorf("Start error has no OpenError for bravo: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"startpool", "worker 2", "bravo", "server down"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Start error %q does not name %q", msg, want)
		}
	}
	l.check(t)
	if err := (*p).Do(ctx, func(context.Context, StDeps) error { return nil }); err == nil {
		t.Error("Do on a pool whose start failed = nil")
	}
	_ = app.Stop(ctx)
}

// Start budget runs out while worker 3 is stuck in bravo (honouring ctx):
// doc: "The error names the pool, each worker that failed and why, or the
// workers still opening and the resource each is stuck in", and OnStart
// returns by 19/20 of the budget.
func TestAttackStartTimeoutErrorNamesStuckWorker(t *testing.T) {
	l := newLedger()
	app, _ := stApp(l, func(ctx context.Context, w W) error {
		if w.ID == 3 {
			<-ctx.Done()
			return context.Cause(ctx)
		}
		return nil
	})
	budget := time.Second
	ctx, c := context.WithTimeout(context.Background(), budget)
	defer c()
	t0 := time.Now()
	err := app.Start(ctx)
	took := time.Since(t0)
	if err == nil {
		t.Fatal("Start = nil")
	}
	t.Logf("start error after %v: %v", took, err)
	msg := err.Error()
	for _, want := range []string{"startpool", "worker 3", "bravo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("start-timeout error %q does not name %q", msg, want)
		}
	}
	l.check(t)
	sctx, sc := context.WithTimeout(context.Background(), 2*time.Second)
	defer sc()
	_ = app.Stop(sctx)
}

// A constructor that ignores its ctx: the start returns by 19/20, naming it;
// its worker closes what it opened as soon as it returns.
func TestAttackStartTimeoutIgnoringConstructor(t *testing.T) {
	l := newLedger()
	release := make(chan struct{})
	var returned atomic.Bool
	app, _ := stApp(l, func(ctx context.Context, w W) error {
		if w.ID == 1 {
			<-release
			returned.Store(true)
		}
		return nil
	})
	budget := time.Second
	ctx, c := context.WithTimeout(context.Background(), budget)
	defer c()
	t0 := time.Now()
	err := app.Start(ctx)
	took := time.Since(t0)
	if err == nil {
		t.Fatal("Start = nil")
	}
	_ = took // when it returned is the machine's business; that it did, and what it says, is not
	msg := err.Error()
	for _, want := range []string{"startpool", "worker 1", "bravo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("start error %q does not name %q", msg, want)
		}
	}
	close(release)
	atkPoll(t, "late constructor's worker closes", 5*time.Second, func() bool {
		o, c := l.counts()
		return returned.Load() && o == c && o > 0
	})
	l.check(t)
	sctx, sc := context.WithTimeout(context.Background(), 2*time.Second)
	defer sc()
	_ = app.Stop(sctx)
	// after Stop, wait until the late worker is fully gone (goleak)
	atkPoll(t, "balanced", 5*time.Second, func() bool { o, c := l.counts(); return o == c })
}

// StopGuard: an earlier-stopping hook eats the whole budget; the pool's
// resources must still be closed and queued tasks reported.
func TestAttackStopGuard(t *testing.T) {
	l := newLedger()
	var notRun atomic.Int32
	var p *workerpool.Pool[AB]
	app := fx.New(fx.NopLogger,
		fx.Provide(workerpool.NewRegistry),
		workerpool.Provide[AB]("guarded", workerpool.Workers(2), workerpool.QueueSize(8), abResources(l),
			workerpool.OnStop(workerpool.Cancel),
			workerpool.ErrorHandler(func(err error) {
				if errors.Is(err, workerpool.ErrClosed) {
					notRun.Add(1)
				}
			})),
		fx.Populate(&p),
		fx.Invoke(func(lc fx.Lifecycle, _ *workerpool.Pool[AB]) {
			lc.Append(fx.StopHook(func(ctx context.Context) { <-ctx.Done() }))
		}),
		workerpool.StopGuard(),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	started := make(chan struct{}, 2)
	for range 2 {
		_ = p.Go(ctx, func(tctx context.Context, _ AB) error { started <- struct{}{}; <-tctx.Done(); <-hold; return nil })
	}
	<-started
	<-started
	for range 5 {
		if err := p.Go(ctx, func(context.Context, AB) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	sctx, sc := context.WithTimeout(context.Background(), time.Second)
	defer sc()
	t0 := time.Now()
	err := app.Stop(sctx)
	t.Logf("app.Stop = %v after %v", err, time.Since(t0))
	l.check(t)
	if o, c := l.counts(); o != 4 || c != 4 {
		t.Errorf("opens %d closes %d, want 4/4", o, c)
	}
	if notRun.Load() != 5 {
		t.Errorf("%d queued tasks reported not run, want 5", notRun.Load())
	}
}
