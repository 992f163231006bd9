package workerpool_test

// Round 4 of adversarial tests: a second Stop, or the app's stop during
// Pool.Stop, with a budget of its own.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a4Flush struct{}

var errA4Flush = errors.New("flush failed: rows lost")

// a4StopApp starts a pool of two workers whose cleanup of *a4Flush waits
// for gate (ignoring its context) and then returns errA4Flush.
func a4StopApp(t *testing.T, name string, gate <-chan struct{}) (*workerpool.Pool[*a4Flush], *fx.App) {
	t.Helper()
	var p *workerpool.Pool[*a4Flush]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a4Flush](name, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func(w W) (*a4Flush, func() error, error) {
				return &a4Flush{}, func() error {
					<-gate
					if w.ID == 1 {
						return errA4Flush
					}
					return nil
				}, nil
			}, resources.Name("flusher")))),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	return p, app
}

// TestAttack4SecondStopsShareTheFirstResult: "A stop while another is under
// way waits for it and returns its result": several second Stops and the
// app's stop, all with budgets longer than the first stop takes, return
// the first stop's teardown error; so do a Stop and the app's stop after
// it has returned.
func TestAttack4SecondStopsShareTheFirstResult(t *testing.T) {
	gate := make(chan struct{})
	p, app := a4StopApp(t, "a4share", gate)
	first := make(chan error, 1)
	go func() { first <- p.Stop(context.Background(), workerpool.Drain) }()
	atkPoll(t, "the first stop refuses tasks", a4Hang, func() bool {
		return errors.Is(p.Go(context.Background(), func(context.Context, *a4Flush) error { return nil }), workerpool.ErrClosed)
	})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			ctx := a3Ctx(t, a4Hang)
			if i == 4 {
				errs[i] = app.Stop(ctx)
				return
			}
			errs[i] = p.Stop(ctx, []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued, workerpool.Drain}[i])
		})
	}
	close(gate)
	within(t, "the stops", wg.Wait)
	var err1 error
	within(t, "the first stop", func() { err1 = <-first })
	if !errors.Is(err1, errA4Flush) {
		t.Fatalf("first Stop = %v, want the cleanup's error", err1)
	}
	for i, err := range errs {
		if !errors.Is(err, errA4Flush) {
			t.Errorf("second stop %d = %v, want the first stop's result", i, err)
		}
	}
	for i, err := range []error{p.Stop(a3Ctx(t, a4Hang), workerpool.Cancel), p.Stop(context.Background(), workerpool.Drain)} {
		if !errors.Is(err, errA4Flush) {
			t.Errorf("a Stop after the stop (%d) = %v, want its result", i, err)
		}
	}
	if err := app.Stop(a3Ctx(t, a4Hang)); err != nil && !errors.Is(err, errA4Flush) {
		t.Errorf("app.Stop after the stop = %v", err)
	}
}

// TestAttack4SecondStopWithShortBudgetNamesStuckCleanup: a second stop —
// Pool.Stop or the app's stop — whose budget runs out while a cleanup
// holds the first one returns an error naming the pool and the stuck
// worker; later, once the first stop has finished, a stop returns the
// first stop's result.
func TestAttack4SecondStopWithShortBudgetNamesStuckCleanup(t *testing.T) {
	for _, second := range []string{"Pool.Stop", "app.Stop"} {
		t.Run(second, func(t *testing.T) {
			gate := make(chan struct{})
			name := "a4stuck" + strings.ReplaceAll(second, ".", "")
			p, app := a4StopApp(t, name, gate)
			first := make(chan error, 1)
			go func() { first <- p.Stop(context.Background(), workerpool.Drain) }()
			atkPoll(t, "both workers closing", a4Hang, func() bool { return p.Stats().Closing == 2 })
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			within(t, "second stop", func() {
				if second == "app.Stop" {
					err = app.Stop(ctx)
				} else {
					err = p.Stop(ctx, workerpool.Cancel)
				}
			})
			if err == nil {
				t.Error("second stop = nil while cleanups hold the pool")
			} else {
				for _, want := range []string{name, "worker 0", "worker 1"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("second stop = %q: does not name %q", err, want)
					}
				}
			}
			close(gate)
			var err1 error
			within(t, "first stop", func() { err1 = <-first })
			if !errors.Is(err1, errA4Flush) {
				t.Errorf("first Stop = %v, want the cleanup's error", err1)
			}
			if err := p.Stop(a3Ctx(t, a4Hang), workerpool.Drain); !errors.Is(err, errA4Flush) {
				t.Errorf("a Stop after the first returned = %v, want its result", err)
			}
		})
	}
}
