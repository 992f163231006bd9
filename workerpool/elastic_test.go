package workerpool_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/internal/fakeclock"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// waitUntil polls cond; only the test's own deadline bounds it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("never: %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestElasticGrowsOnDemandAndRetiresIdleWorkers(t *testing.T) {
	var (
		clock         = fakeclock.New()
		opens, closes atomic.Int32
	)
	p, app := start[*Conn](t,
		workerpool.Elastic(1, 3, time.Minute),
		workerpool.QueueSize(10),
		workerpool.WithClock(clock),
		workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func(), error) {
			opens.Add(1)
			return &Conn{gen: w.Generation}, func() { closes.Add(1) }, nil
		})),
	)
	if n, s := opens.Load(), p.Stats(); n != 1 || s.Workers != 1 {
		t.Fatalf("after start: %d opened, Stats %+v; want min = 1", n, s)
	}

	// Three tasks that wait: the pool grows to three workers to run them.
	release := make(chan struct{})
	var running atomic.Int32
	for range 3 {
		if err := p.Go(t.Context(), func(context.Context, *Conn) error {
			running.Add(1)
			<-release
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "three tasks run at once", func() bool { return running.Load() == 3 })
	if n, s := opens.Load(), p.Stats(); n != 3 || s.Workers != 3 || s.Busy != 3 {
		t.Errorf("under load: %d opened, Stats %+v; want 3 workers, all busy", n, s)
	}
	// At max, a fourth task waits in the queue instead of opening more.
	if err := p.Go(t.Context(), func(context.Context, *Conn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitUntil(t, "every task done", func() bool { return p.Stats().Done == 4 })
	if n := opens.Load(); n != 3 {
		t.Errorf("%d opened, want never more than max = 3", n)
	}

	// Idle for the timeout: the pool shrinks back to min, closing resources.
	waitUntil(t, "three idle timers", func() bool { return len(clock.Pending()) == 3 })
	clock.Add(time.Minute)
	waitUntil(t, "two workers retired", func() bool { return closes.Load() == 2 })
	waitUntil(t, "one worker left", func() bool { return p.Stats().Workers == 1 })
	if got := closes.Load(); got != 2 {
		t.Errorf("%d closed, want 2: never below min", got)
	}

	app.RequireStop()
	if o, c := opens.Load(), closes.Load(); o != c {
		t.Errorf("%d opened, %d closed, want every open closed once", o, c)
	}
}

func TestElasticFromZeroRunsQueuedTasksOnStop(t *testing.T) {
	var ran atomic.Int32
	p, app := start[resources.Worker](t, workerpool.Elastic(0, 2, time.Hour), workerpool.QueueSize(100))
	if s := p.Stats(); s.Workers != 0 {
		t.Fatalf("after start: %+v, want no worker", s)
	}
	for range 100 {
		if err := p.Go(t.Context(), func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	app.RequireStop()
	// Drain: with no worker left, the stop opens one to run the queue.
	if got := ran.Load(); got != 100 || p.Stats().Dropped != 0 {
		t.Errorf("ran %d, dropped %d; want all 100 run", got, p.Stats().Dropped)
	}
}

func TestElasticInvalid(t *testing.T) {
	for _, give := range []workerpool.Option{
		workerpool.Elastic(3, 2, time.Second),
		workerpool.Elastic(-1, 2, time.Second),
		workerpool.Elastic(0, 0, time.Second),
		workerpool.Elastic(0, 2, 0),
	} {
		app := fx.New(fx.NopLogger, workerpool.Provide[int]("bad", give), fx.Supply(1), fx.Invoke(func(*workerpool.Pool[int]) {}))
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), give.String()) {
			t.Errorf("fx.New with %v = %v, want an error naming it", give, err)
		}
	}
	if got := workerpool.Elastic(1, 4, time.Minute).String(); got != "workerpool.Elastic(1, 4, 1m0s)" {
		t.Errorf("String() = %q", got)
	}
}
