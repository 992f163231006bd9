package fxpooltest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// generation runs a task and returns the generation of the worker that ran
// it.
func generation(t *testing.T, pool *workerpool.Pool[resources.Worker]) int {
	t.Helper()
	var gen int
	err := pool.Do(t.Context(), func(_ context.Context, w resources.Worker) error {
		gen = w.Generation
		return nil
	})
	if err != nil {
		t.Fatalf("Do = %v", err)
	}
	return gen
}

func TestClockRecyclesByAge(t *testing.T) {
	clock := fxpooltest.NewClock()
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[resources.Worker]
	app := newApp(t,
		workerpool.Provide[resources.Worker]("aging",
			workerpool.Workers(1),
			workerpool.MaxWorkerAge(time.Hour),
			clock.Option(),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	if gen := generation(t, pool); gen != 0 {
		t.Fatalf("first task ran on generation %d, want 0", gen)
	}
	if err := clock.WaitTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	if gen := generation(t, pool); gen != 1 {
		t.Errorf("after an hour, a task ran on generation %d, want 1", gen)
	}
	app.RequireStop()
	rec.Verify(t)
	if n := count[workerpool.WorkerRebuilt](rec.Events()); n != 1 {
		t.Errorf("%d rebuilds, want 1", n)
	}
}

// connWorker is a task parameter that needs a Conn.
type connWorker struct {
	fx.In
	Conn *Conn
	W    resources.Worker
}

func TestClockDrivesRestartBackoff(t *testing.T) {
	clock := fxpooltest.NewClock()
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[connWorker]
	app := newApp(t,
		fx.Supply(&DB{}),
		workerpool.Provide[connWorker]("backoff",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(openConn, fxpooltest.OnOpen(2, fxpooltest.Fail)))),
			workerpool.RestartBackoff(time.Minute, time.Minute),
			clock.Option(),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	err := pool.Do(t.Context(), func(context.Context, connWorker) error { return resources.ErrBroken })
	if !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("Do = %v", err)
	}
	// The rebuild's open fails; the worker waits on the clock to retry.
	if err := clock.WaitTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	var gen int
	err = pool.Do(t.Context(), func(_ context.Context, d connWorker) error {
		gen = d.W.Generation
		return nil
	})
	if err != nil || gen == 0 {
		t.Errorf("after the retry, a task ran on generation %d with error %v, want a new generation", gen, err)
	}
	app.RequireStop()
	rec.Verify(t)
	failed := 0
	for _, e := range rec.Events() {
		if e, ok := e.(workerpool.WorkerOpened); ok && e.Err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed opens, want 1", failed)
	}
}

func TestClockRetiresIdleElasticWorkers(t *testing.T) {
	clock := fxpooltest.NewClock()
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[resources.Worker]
	app := newApp(t,
		workerpool.Provide[resources.Worker]("elastic",
			workerpool.Elastic(0, 1, time.Minute),
			clock.Option(),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	generation(t, pool) // opens a worker on demand
	if err := clock.WaitTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	ctx := waitCtx(t)
	for count[workerpool.WorkerClosed](rec.Events()) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the idle worker never closed")
		case <-time.After(time.Millisecond):
		}
	}
	app.RequireStop()
	rec.Verify(t)
}

func TestClockWaitTimersEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("enough")
	cancel(stop)
	if err := fxpooltest.NewClock().WaitTimers(ctx, 1); err != stop {
		t.Errorf("WaitTimers = %v, want the context's cause", err)
	}
}

// waitCtx bounds a wait for the pool, so that a broken test fails instead
// of hanging.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An Add called by a function that an Add calls moves the clock its whole
// duration, as concurrent Adds do: the outer Add set the clock to where it
// alone would take it, and time went back. Concurrent Adds lost time so,
// and a timer due within their sum never fired (TestAttack5_ClockConcurrentAddsFireOnce
// failed once in CI).
func TestClockAddWithinAddMovesItsWholeDuration(t *testing.T) {
	c := fxpooltest.NewClock()
	start := c.Now()
	var inner time.Time
	c.AfterFunc(time.Millisecond, func() {
		c.Add(10 * time.Millisecond)
		inner = c.Now()
	})
	c.Add(2 * time.Millisecond)
	if got := inner.Sub(start); got != 11*time.Millisecond {
		t.Errorf("inside the callback at 1 ms, after Add(10ms): %v, want 11ms", got)
	}
	if got := c.Now().Sub(start); got != 12*time.Millisecond {
		t.Errorf("after Add(2ms) whose callback added 10 ms: %v, want 12ms (time must not go back)", got)
	}
}
