package workerpool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

// TestStopCancelDropsAGroupsQueuedTasks: a Cancel stop cancels a group's
// running task, which returns ctx.Err() (context.Canceled, not the
// stop's ErrClosed) and so fails the group and ends its context. Its
// siblings still queued were dropped by the stop, not given up by their
// submitter: each reaches OnDropped. The stop now sweeps the queue before
// it cancels the running tasks; before, a sibling swept after the
// cancelled task had failed the group would have counted as given up (a
// race this test seldom lost: it guards the order, not a fix it proves).
func TestStopCancelDropsAGroupsQueuedTasks(t *testing.T) {
	for round := range 20 {
		var dropped atomic.Int32
		var p *workerpool.Pool[*Conn]
		app := fxtest.New(t,
			workerpool.Provide[*Conn]("group-cancel", workerpool.Workers(1), workerpool.QueueSize(8),
				workerpool.Resources(resources.PerWorker(func(resources.Worker) (*Conn, error) { return &Conn{}, nil })),
				workerpool.OnDropped[*Conn](func(context.Context, func(context.Context, *Conn) error) { dropped.Add(1) })),
			fx.Populate(&p))
		app.RequireStart()
		g, _ := p.Group(t.Context())
		running := make(chan struct{})
		g.Go(func(ctx context.Context, _ *Conn) error {
			close(running)
			<-ctx.Done()
			return ctx.Err() // context.Canceled: the group's cause is not ErrClosed
		})
		<-running
		var ran atomic.Int32
		for range 3 {
			g.Go(func(context.Context, *Conn) error { ran.Add(1); return nil })
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := p.Stop(ctx, workerpool.Cancel); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		cancel()
		if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("round %d: Wait = %v", round, err)
		}
		if n := ran.Load(); n != 0 {
			t.Errorf("round %d: %d queued tasks ran under Cancel", round, n)
		}
		if n := dropped.Load(); n != 3 {
			t.Fatalf("round %d: OnDropped saw %d of the group's 3 queued tasks", round, n)
		}
		app.RequireStop()
	}
}
