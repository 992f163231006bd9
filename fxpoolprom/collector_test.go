package fxpoolprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpoolprom"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var pool *workerpool.Pool[resources.Worker]
	app := fxtest.New(t,
		fxpool.Module,
		fxpoolprom.Module,
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		workerpool.Provide[resources.Worker]("indexer", workerpool.Workers(2)),
		fx.Populate(&pool),
	)
	app.RequireStart()
	ctx := context.Background()
	for range 3 {
		if err := pool.Do(ctx, func(context.Context, resources.Worker) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	_ = pool.Do(ctx, func(context.Context, resources.Worker) error { return errors.New("boom") })
	_ = pool.Do(ctx, func(context.Context, resources.Worker) error { panic("oops") })
	// The panicking task's worker rebuilds after its submitter hears.
	for pool.Stats().Restarts != 1 {
		select {
		case <-t.Context().Done():
			t.Fatal("the worker never restarted")
		case <-time.After(time.Millisecond):
		}
	}

	want := `
# HELP fxpool_tasks_total Tasks by outcome: ok (ran and returned nil), failed (returned an error), panicked, dropped (never ran; the submitter was told).
# TYPE fxpool_tasks_total counter
fxpool_tasks_total{outcome="dropped",pool="indexer"} 0
fxpool_tasks_total{outcome="failed",pool="indexer"} 1
fxpool_tasks_total{outcome="ok",pool="indexer"} 3
fxpool_tasks_total{outcome="panicked",pool="indexer"} 1
# HELP fxpool_worker_rebuilds_total Times a worker rebuilt its resources: restart (after a panic, ErrBroken or a failed check) or recycle (MaxTasksPerWorker, MaxWorkerAge).
# TYPE fxpool_worker_rebuilds_total counter
fxpool_worker_rebuilds_total{pool="indexer",reason="recycle"} 0
fxpool_worker_rebuilds_total{pool="indexer",reason="restart"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fxpool_tasks_total", "fxpool_worker_rebuilds_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "fxpool_workers"); err != nil || n != 3 {
		t.Errorf("fxpool_workers: %d series, %v; want serving, opening, closing", n, err)
	}
	app.RequireStop()
}

// promApp is an app of one pool whose collector registers with reg.
func promApp(reg prometheus.Registerer) *fx.App {
	return fx.New(fx.NopLogger,
		fxpool.Module,
		fxpoolprom.Module,
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		workerpool.Provide[resources.Worker]("indexer", workerpool.Workers(1)),
		fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
	)
}

// The collector is registered from the app's start to its stop: two apps
// that share a Registerer (DefaultRegisterer) run one after the other (the
// second fx.New failed with "duplicate metrics collector registration
// attempted"), and two at once make the second start fail, saying why.
func TestModuleRegistersWhileTheAppRuns(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ctx := t.Context()
	count := func() int {
		t.Helper()
		n, err := testutil.GatherAndCount(reg, "fxpool_workers")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 2 {
		app := promApp(reg)
		if err := app.Err(); err != nil {
			t.Fatalf("app %d: fx.New: %v", i, err)
		}
		if n := count(); n != 0 {
			t.Errorf("app %d: %d fxpool_workers series before the start, want 0", i, n)
		}
		if err := app.Start(ctx); err != nil {
			t.Fatalf("app %d: start: %v", i, err)
		}
		if n := count(); n == 0 {
			t.Errorf("app %d: no fxpool_workers series while it runs", i)
		}
		if err := app.Stop(ctx); err != nil {
			t.Fatalf("app %d: stop: %v", i, err)
		}
		if n := count(); n != 0 {
			t.Errorf("app %d: %d fxpool_workers series after the stop, want 0", i, n)
		}
	}

	first, second := promApp(reg), promApp(reg)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := second.Start(ctx)
	var dup prometheus.AlreadyRegisteredError
	if !errors.As(err, &dup) || !strings.Contains(err.Error(), "fxpoolprom") {
		t.Errorf("second start while the first app runs = %v, want fxpoolprom's AlreadyRegisteredError", err)
	}
	if err == nil {
		_ = second.Stop(ctx)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d fxpool_workers series after both stopped, want 0", n)
	}
}
