package workerpool_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// The flip side: a task of Go does not end with its submitter's context,
// so a Go task whose submitter's ctx ended while it was queued is still
// wanted: a DropQueued stop drops it, the ErrorHandler hears ErrClosed and
// OnDropped sees it; under Drain it runs, with a live context.
func TestA16tGoTaskOutlivesSubmitterCtx(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			var errs a16tErrs
			var dropped a16tDropped
			p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4),
				workerpool.ErrorHandler(errs.handle), dropped.option())
			b := a16tOccupy(t, p, 1)
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), a16tKey{}, "fire"))
			ctxErr := make(chan error, 1)
			if err := p.Go(ctx, func(tctx context.Context, _ resources.Worker) error {
				ctxErr <- tctx.Err()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			cancel()
			stopped := make(chan error, 1)
			go func() { stopped <- a16tStop(t, p, policy) }()
			a16tEventually(t, "refusal", func() bool { return !p.Serving() })
			b.open()
			if err := a16tRecv(t, stopped, "stop"); err != nil {
				t.Fatal(err)
			}
			if policy == workerpool.Drain {
				if err := a16tRecv(t, ctxErr, "Go task under Drain"); err != nil {
					t.Errorf("Go task's ctx ended with its submitter's: %v", err)
				}
				return
			}
			select {
			case <-ctxErr:
				t.Error("a queued task ran under DropQueued")
			default:
			}
			if dropped.get("fire") != 1 || errs.count(workerpool.ErrClosed) != 1 {
				t.Errorf("dropped Go task: OnDropped %d, ErrorHandler ErrClosed %d; want 1 and 1",
					dropped.get("fire"), errs.count(workerpool.ErrClosed))
			}
		})
	}
}

// A group whose parent context ended while its task was queued, then a
// Cancel stop: Wait must give the parent's cause ("the cause of the group's
// context when that context ended first"), and OnDropped must not see the
// task, which the group's submitter no longer wants.
func TestA16tGroupAbandonedThenStopped(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4), dropped.option())
	b := a16tOccupy(t, p, 1)
	cause := errors.New("a16t: request gone")
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), a16tKey{}, "grp"))
	g, gctx := p.Group(parent)
	var ran atomic.Bool
	g.Go(func(context.Context, resources.Worker) error { ran.Store(true); return nil })
	cancel(cause)
	a16tRecv(t, gctx.Done(), "group ctx")
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.Cancel) }()
	err := g.Wait()
	b.open()
	if e := a16tRecv(t, stopped, "stop"); e != nil {
		t.Fatal(e)
	}
	if ran.Load() {
		t.Fatal("task ran")
	}
	if !errors.Is(err, cause) {
		t.Errorf("Wait = %v, want the parent's cause (the group's context ended first)", err)
	}
	if n := dropped.get("grp"); n != 0 {
		t.Errorf("OnDropped saw the abandoned group task %d times", n)
	}
}

// Map's ctx ends while its tasks wait behind a busy worker: Map ends and
// "has cancelled the tasks still queued (they will not run)". A DropQueued
// stop afterwards must not hand them to OnDropped as wanted work.
func TestA16tMapAbandonedThenStopped(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(8), dropped.option())
	b := a16tOccupy(t, p, 1)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), a16tKey{}, "map"))
	var ran atomic.Int32
	ended := make(chan error, 1)
	go func() {
		var last error
		for _, err := range workerpool.Map(ctx, p, slices.Values([]int{1, 2, 3}), func(context.Context, resources.Worker, int) (int, error) {
			ran.Add(1)
			return 0, nil
		}, workerpool.InFlight(3)) {
			last = err
		}
		ended <- last
	}()
	a16tEventually(t, "Map's three tasks queued", func() bool { return p.Stats().Queued == 3 })
	cancel()
	if err := a16tRecv(t, ended, "Map to end with its ctx"); err == nil {
		t.Error("Map ended without an error")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.DropQueued) }()
	a16tEventually(t, "refusal", func() bool { return !p.Serving() })
	b.open()
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d cancelled Map tasks ran", ran.Load())
	}
	if n := dropped.get("map"); n != 0 {
		t.Errorf("OnDropped received %d Map tasks that Map had cancelled", n)
	}
	if st := p.Stats(); st.Dropped != 3 || st.Done != 1 {
		t.Errorf("Stats Done=%d Dropped=%d, want 1 and 3", st.Done, st.Dropped)
	}
}

// The same abandoned GoReport task reached by a worker (no stop): NotRun
// with the cause, OnDropped silent, counted Dropped.
func TestA16tGoReportAbandonedReachedByWorker(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4), dropped.option())
	b := a16tOccupy(t, p, 1)
	cause := errors.New("a16t: nack")
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), a16tKey{}, "r"))
	type rep struct {
		o   workerpool.Outcome
		err error
	}
	reps := make(chan rep, 2)
	var ran atomic.Bool
	if err := p.GoReport(ctx, func(context.Context, resources.Worker) error { ran.Store(true); return nil },
		func(o workerpool.Outcome, err error) { reps <- rep{o, err} }); err != nil {
		t.Fatal(err)
	}
	cancel(cause)
	b.open()
	r := a16tRecv(t, reps, "report")
	if r.o != workerpool.NotRun || !errors.Is(r.err, cause) {
		t.Errorf("report %v %v, want NotRun with the cause", r.o, r.err)
	}
	a16tBarrier(t, p)
	if ran.Load() {
		t.Error("ran")
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if len(reps) != 0 {
		t.Error("reported twice")
	}
	if dropped.n.Load() != 0 {
		t.Error("OnDropped saw it")
	}
	if st := p.Stats(); st.Dropped != 1 || st.Done != 2 {
		t.Errorf("Stats Done=%d Dropped=%d, want 2 and 1", st.Done, st.Dropped)
	}
}
