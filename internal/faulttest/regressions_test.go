package faulttest

// Regression tests for bugs the harness found, named after them. The first
// (an expired worker without resources) lives in package workerpool, where
// it can drive the worker deterministically.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type regConn struct{ closed atomic.Bool }

func (c *regConn) Close() error { c.closed.Store(true); return nil }

// Bug 2: the pool's OnStart could return nil after its context had ended:
// once every worker had reported ready it stopped looking at the context,
// and its select picked at random between a ready worker and the deadline.
// Here every open ignores the cancellation and succeeds just after the
// deadline, so a start that does not look again returns nil too late.
func TestRegressionStartSucceedsAfterItsDeadline(t *testing.T) {
	for i := range 50 {
		var opened, closed atomic.Int32
		app := fx.New(
			fx.NopLogger,
			workerpool.Provide[*regConn]("late",
				workerpool.Workers(4),
				workerpool.Resources(resources.PerWorker(func(ctx context.Context) (*regConn, func(), error) {
					<-ctx.Done() // then succeed anyway
					opened.Add(1)
					return &regConn{}, func() { closed.Add(1) }, nil
				})),
			),
			fx.Invoke(func(*workerpool.Pool[*regConn]) {}),
		)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := app.Start(ctx)
		cancel()
		if err == nil {
			t.Fatalf("attempt %d: Start() = nil after its deadline", i)
		}
		// The pool rolls back on its own: fx will not stop it. Workers
		// that no opener reached before the deadline open nothing; every
		// one that opened closes (goleak then checks that none is left).
		deadline := time.Now().Add(10 * time.Second)
		for closed.Load() != opened.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d: %d opened, %d closed", i, opened.Load(), closed.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Gap 3 — found by the property test (violation "submitter-hang").
//
// Tasks could be submitted before the pool started; they waited in the
// queue. If the start deadline passed before fx reached the pool's OnStart
// (an earlier hook was slow), fx ran neither the pool's OnStart nor its
// OnStop, so nothing ever reported those tasks: Do and Future.Wait blocked
// for ever, breaking "every accepted task runs, or its submitter is told".
// The pool now refuses tasks before its OnStart with ErrNotStarted.
func TestRegressionTaskSubmittedBeforeASkippedStartIsNeverReported(t *testing.T) {
	var pool *workerpool.Pool[*regConn]
	app := fx.New(
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) { // an app-scoped resource that opens slowly
			lc.Append(fx.Hook{OnStart: func(ctx context.Context) error { <-ctx.Done(); return nil }})
		}),
		workerpool.Provide[*regConn]("skipped",
			workerpool.Resources(resources.PerWorker(func() *regConn { return &regConn{} })),
		),
		fx.Populate(&pool),
	)
	// The pool refuses tasks before its OnStart: fx may never run it.
	done := make(chan error, 1)
	go func() { done <- pool.Do(context.Background(), func(context.Context, *regConn) error { return nil }) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := app.Start(ctx); err == nil {
		t.Fatal("Start succeeded")
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), time.Second)
	defer cancelStop()
	_ = app.Stop(stopCtx)
	select {
	case err := <-done:
		if !errors.Is(err, workerpool.ErrNotStarted) && !errors.Is(err, workerpool.ErrClosed) {
			t.Fatalf("Do: %v, want ErrNotStarted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do still waiting 5s after the app stopped: its task was accepted and never reported")
	}
}
