package workerpool_test

// Capacity().InFlight() is the feeder's window (pond's and ants' bounded
// queues with blocking submission). The round found that a feeder keeping
// InFlight tasks unfinished blocked in Go while workers opened, which the
// docs said it never did: they now say that Go waits for those opens, as
// for room in a full queue. Checked: the window fills, the submitter waits
// with the queue full while the opens are held, and once they are done
// every Go returns and every task runs.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a15GatedApp starts a pool whose workers' opens for which gated(w) holds
// wait on the returned gate (or their context).
func a15GatedApp(t *testing.T, gated func(resources.Worker) bool, opts ...workerpool.Option) (*workerpool.Pool[*a15Res], *a15Gate) {
	t.Helper()
	gate := a15NewGate(t)
	var p *workerpool.Pool[*a15Res]
	all := append([]workerpool.Option{
		workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*a15Res, error) {
			if gated(w) {
				if err := gate.Wait(ctx); err != nil {
					return nil, err
				}
			}
			return &a15Res{W: w}, nil
		})),
		workerpool.ErrorHandler(func(error) {}),
	}, opts...)
	app := fx.New(fx.NopLogger, workerpool.Provide[*a15Res]("cap", all...), fx.Populate(&p))
	ctx, cancel := context.WithTimeout(context.Background(), a15Guard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		gate.Open()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	})
	return p, gate
}

// a15FillWindow submits InFlight() tasks that wait on hold, each with Go,
// while the gated opens are held; once the queue is full it lets the opens
// go, and fails unless every Go then returns, every worker runs one of
// the tasks (the rest are queued), and every task runs once let go.
func a15FillWindow(t *testing.T, p *workerpool.Pool[*a15Res], opens *a15Gate) {
	t.Helper()
	c := p.Capacity()
	window := c.InFlight()
	hold := a15NewGate(t)
	var ran atomic.Int32
	done := a15Go(func() error {
		for i := range window {
			if err := p.Go(context.Background(), func(c context.Context, _ *a15Res) error {
				ran.Add(1)
				return hold.Wait(c)
			}); err != nil {
				return fmt.Errorf("Go %d: %w", i, err)
			}
		}
		return nil
	})
	a15Eventually(t, "the queue full while workers open", func() bool { return p.Stats().Queued == c.Queue })
	opens.Open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(a15Guard): // a hang guard, not a timing
		t.Fatalf("a feeder keeping InFlight()=%d tasks unfinished still blocked in Go once the opens were done (stats %+v)", window, p.Stats())
	}
	a15Eventually(t, "every worker running a task of the window", func() bool { return int(ran.Load()) == c.MaxWorkers })
	hold.Open()
	a15Eventually(t, "every task of the window done", func() bool { return p.Stats().Done >= uint64(window) })
}

// An elastic pool: MaxWorkers is Elastic's max, the workers beyond min
// still opening.
func TestAttack15PeerCapacityWindowElastic(t *testing.T) {
	p, opens := a15GatedApp(t, func(w resources.Worker) bool { return w.ID >= 1 },
		workerpool.Elastic(1, 3, time.Minute), workerpool.QueueSize(2))
	a15FillWindow(t, p, opens)
}

// A fixed pool right after Resize up: Capacity counts the workers "the pool
// means to run now", some still opening.
func TestAttack15PeerCapacityWindowAfterResize(t *testing.T) {
	p, opens := a15GatedApp(t, func(w resources.Worker) bool { return w.ID >= 1 },
		workerpool.Workers(1), workerpool.QueueSize(2))
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	a15FillWindow(t, p, opens)
}

// A fixed pool whose worker rebuilds after a panic, its reopen held: the
// window is the same, the pool holds one worker fewer.
func TestAttack15PeerCapacityWindowDuringRebuild(t *testing.T) {
	p, opens := a15GatedApp(t, func(w resources.Worker) bool { return w.Generation >= 1 },
		workerpool.Workers(2), workerpool.QueueSize(2))
	// The panicking task counts in the window until it is reported.
	var reported atomic.Bool
	if err := p.GoReport(context.Background(), func(context.Context, *a15Res) error { panic("poison") },
		func(workerpool.Outcome, error) { reported.Store(true) }); err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "the worker rebuilding", func() bool { return reported.Load() && p.Stats().Opening == 1 })
	a15FillWindow(t, p, opens)
}
