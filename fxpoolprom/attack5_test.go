package fxpoolprom_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpoolprom"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
)

// "Each scrape reads workerpool.Pool.Stats, which never blocks. It is safe
// for concurrent use": scrapes racing the app's start, tasks and stop, on a
// pedantic registry (which checks Collect against Describe), under -race.
func TestAttack5_ScrapesRaceTheLifecycle(t *testing.T) {
	for round := range 5 {
		reg := prometheus.NewPedanticRegistry()
		type deps struct {
			fx.In
			W resources.Worker
		}
		var pool *workerpool.Pool[deps]
		app := fx.New(fx.NopLogger,
			fxpool.Module,
			fxpoolprom.Module,
			fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
			workerpool.Provide[deps]("p", workerpool.Elastic(0, 3, time.Millisecond)),
			workerpool.Provide[resources.Worker]("q", workerpool.Workers(2)),
			fx.Populate(&pool),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
		)
		if err := app.Err(); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var gatherErr error
		var gmu sync.Mutex
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := reg.Gather(); err != nil {
						gmu.Lock()
						gatherErr = err
						gmu.Unlock()
					}
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := app.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			_ = pool.Go(ctx, func(context.Context, deps) error { return nil })
		}
		running := a5poolsIn(t, reg)
		if err := app.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		close(stop)
		wg.Wait()
		if gatherErr != nil {
			t.Fatalf("round %d: Gather: %v", round, gatherErr)
		}
		if !running["p"] || !running["q"] {
			t.Fatalf("round %d: pools missing from the metrics of the running app: %v", round, running)
		}
		if stopped := a5poolsIn(t, reg); len(stopped) != 0 {
			t.Fatalf("round %d: the stopped app's collector still reports %v", round, stopped)
		}
	}
}

// a5poolsIn returns the label values reg reports, the pools' names among
// them.
func a5poolsIn(t *testing.T, reg prometheus.Gatherer) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				seen[l.GetValue()] = true
			}
		}
	}
	return seen
}

// The package doc's snippet, verbatim but for the pool, on
// DefaultRegisterer: a second app in the same process (a test suite, a
// restart) builds, starts and stops as the first did.
func TestAttack5_DocSnippetTwiceOnDefaultRegisterer(t *testing.T) {
	var cols []*fxpoolprom.Collector
	defer func() { // should the fix regress, leave DefaultRegisterer clean
		for _, c := range cols {
			prometheus.DefaultRegisterer.Unregister(c)
		}
	}()
	for i := range 2 {
		var c *fxpoolprom.Collector
		app := fx.New(fx.NopLogger,
			fxpool.Module,
			fxpoolprom.Module,
			fx.Supply(fx.Annotate(prometheus.DefaultRegisterer, fx.As(new(prometheus.Registerer)))),
			workerpool.Provide[resources.Worker]("indexer", workerpool.Workers(1)),
			fx.Invoke(func(*workerpool.Pool[resources.Worker]) {}),
			fx.Populate(&c),
		)
		if c != nil {
			cols = append(cols, c)
		}
		if err := app.Err(); err != nil {
			t.Fatalf("app %d: fx.New: %v", i, err)
		}
		ctx := t.Context()
		if err := app.Start(ctx); err != nil {
			t.Fatalf("app %d: start: %v", i, err)
		}
		if err := app.Stop(ctx); err != nil {
			t.Fatalf("app %d: stop: %v", i, err)
		}
	}
}
