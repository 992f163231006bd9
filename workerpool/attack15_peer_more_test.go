package workerpool_test

// More peer behaviours: counters of fire-and-forget bursts (pond's
// CompletedTasks while running), causes of not-run reports, feeders' stop
// errors, Map without a queue and from inside a task.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// pond's CompletedTasks read while the pool runs: "tasks of Go that a
// worker runs one after another count by the 64, and all once it waits":
// once the pool idles, Done is exact and Busy is 0, without a stop.
func TestAttack15PeerGoBurstCountsWhenIdle(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(1000))
	var ran atomic.Int32
	for i := range 1000 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
			ran.Add(1)
			if i%10 == 0 {
				return errA15
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	a15Eventually(t, "all ran", func() bool { return ran.Load() == 1000 })
	a15Eventually(t, "counters settle while idle", func() bool {
		s := e.P.Stats()
		return s.Done == 1000 && s.Busy == 0 && s.Queued == 0
	})
	if s := e.P.Stats(); s.Failed != 100 {
		t.Errorf("Failed %d, want 100", s.Failed)
	}
}

// GoReport: a task whose submitter's context ended while it was queued is
// reported NotRun "with ctx's cause".
func TestAttack15PeerGoReportNotRunCause(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "blocker")
	ctx, cancel := context.WithCancelCause(context.Background())
	type rep struct {
		o   workerpool.Outcome
		err error
	}
	ch := make(chan rep, 1)
	var ran atomic.Bool
	if err := e.P.GoReport(ctx, func(context.Context, a15Deps) error { ran.Store(true); return nil },
		func(o workerpool.Outcome, err error) { ch <- rep{o, err} }); err != nil {
		t.Fatal(err)
	}
	cancel(errA15b)
	gate.Open()
	r := a15Recv(t, ch, "report")
	if r.o != workerpool.NotRun || !errors.Is(r.err, errA15b) {
		t.Errorf("report %v %v, want NotRun with the cause %v", r.o, r.err, errA15b)
	}
	if ran.Load() {
		t.Errorf("the task ran")
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Dropped != 1 || len(e.Dropped()) != 0 {
		t.Errorf("stats %+v, OnDropped %d; want Dropped 1 and OnDropped 0", s, len(e.Dropped()))
	}
}

// AddFeeder: feeders stop first, in order; "an error or panic of stop is
// joined to the stop's error"; AddFeeder from within a stop is refused.
func TestAttack15PeerFeederStopErrors(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	var order []int
	var lateErr error
	_ = e.P.AddFeeder(func(context.Context) error { order = append(order, 1); return errA15 })
	_ = e.P.AddFeeder(func(context.Context) error {
		order = append(order, 2)
		lateErr = e.P.AddFeeder(func(context.Context) error { return nil })
		panic("feeder two")
	})
	_ = e.P.AddFeeder(func(context.Context) error { order = append(order, 3); return nil })
	err := e.Stop()
	if !errors.Is(err, errA15) || !strings.Contains(err.Error(), "feeder two") {
		t.Errorf("stop = %v, want the feeder's error and panic joined", err)
	}
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Errorf("feeders stopped in order %v", order)
	}
	if !errors.Is(lateErr, workerpool.ErrClosed) {
		t.Errorf("AddFeeder during the stop = %v, want ErrClosed", lateErr)
	}
	e.VerifyResources()
}

// Map on a pool without a queue, with a window larger than the pool, and
// Map from inside a task of the same pool: neither deadlocks.
func TestAttack15PeerMapNoQueueAndNested(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(0))
	seq := func(n int) func(func(int) bool) {
		return func(yield func(int) bool) {
			for i := range n {
				if !yield(i) {
					return
				}
			}
		}
	}
	count := func() (int, error) {
		n := 0
		for v, err := range workerpool.Map(context.Background(), e.P, seq(100), func(_ context.Context, _ a15Deps, x int) (int, error) { return x, nil }, workerpool.InFlight(8)) {
			if err != nil {
				return n, err
			}
			if v != n {
				return n, errors.New("out of order")
			}
			n++
		}
		return n, nil
	}
	res := a15Go(func() error {
		n, err := count()
		if err == nil && n != 100 {
			err = errors.New("short")
		}
		return err
	})
	if err := a15Recv(t, res, "Map on a pool without a queue"); err != nil {
		t.Errorf("Map: %v", err)
	}
	nested := a15Go(func() error {
		return e.P.Do(context.Background(), func(context.Context, a15Deps) error {
			n, err := count()
			if err == nil && n != 100 {
				err = errors.New("short")
			}
			return err
		})
	})
	if err := a15Recv(t, nested, "Map from inside a task"); err != nil {
		t.Errorf("nested Map: %v", err)
	}
}

// fxpool.Module's Registry lists the pool and its stats (pond's metrics,
// collected app-wide).
func TestAttack15PeerRegistry(t *testing.T) {
	var reg *workerpool.Registry
	var p *workerpool.Pool[a15Deps]
	app := fx.New(fx.NopLogger, fxpool.Module,
		workerpool.Provide[a15Deps]("reg", workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func() *a15Res { return &a15Res{} }))),
		fx.Populate(&reg, &p))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := p.Do(ctx, a15Noop); err != nil {
			t.Fatal(err)
		}
	}
	if names := reg.Names(); len(names) != 1 || names[0] != "reg" {
		t.Errorf("registry names %v", names)
	}
	if s := reg.Stats()["reg"]; s.Done != 5 || s.Workers != 2 {
		t.Errorf("registry stats %+v", s)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// Capacity after Resize: Workers and MaxWorkers follow the new size and
// InFlight stays MaxWorkers + Queue. (Whether a defaulted queue, 4 × Workers,
// follows Resize is not documented: logged.)
func TestAttack15PeerCapacityAfterResize(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	before := e.P.Capacity()
	if before.Queue != 8 {
		t.Errorf("default queue %d for 2 workers, want 8", before.Queue)
	}
	if err := e.P.Resize(5); err != nil {
		t.Fatal(err)
	}
	after := e.P.Capacity()
	t.Logf("capacity before Resize(5) %+v, after %+v", before, after)
	if after.Workers != 5 || after.MaxWorkers != 5 || after.InFlight() != after.MaxWorkers+after.Queue {
		t.Errorf("capacity after Resize(5) %+v", after)
	}
}
