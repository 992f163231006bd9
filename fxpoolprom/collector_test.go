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
