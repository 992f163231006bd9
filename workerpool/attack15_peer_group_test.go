package workerpool_test

// Ports of errgroup's errgroup_test.go, conc's context_pool_test.go and
// error_pool_test.go, and pond's group_test.go, on Pool.Group.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// errgroup TestZeroGroup, TestWithContext and TestCancelCause: Wait returns
// the first error; the group's context is done once Wait returns, with the
// first error as its cause, or context.Canceled.
func TestAttack15PeerErrgroupWithContext(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	cases := [][]error{
		{},
		{nil},
		{errA15},
		{errA15, nil},
		{errA15, nil, errA15b},
		{nil, errA15b, errA15},
	}
	for _, errs := range cases {
		g, gctx := e.P.Group(context.Background())
		var want error
		for _, err := range errs {
			g.Go(func(context.Context, a15Deps) error { return err })
			if want == nil && err != nil {
				want = err
			}
		}
		err := a15Recv(t, a15Go(g.Wait), "Wait")
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("errs %v: Wait = %v, want %v", errs, err, want)
		}
		select {
		case <-gctx.Done():
		default:
			t.Errorf("errs %v: group context not done after Wait", errs)
		}
		wantCause := want
		if wantCause == nil {
			wantCause = context.Canceled
		}
		if c := context.Cause(gctx); !errors.Is(c, wantCause) {
			t.Errorf("errs %v: cause %v, want %v", errs, c, wantCause)
		}
	}
}

// conc WithCancelOnError and pond TestTaskGroupContext: the first failure
// cancels the others' context, with itself as cause; Wait returns it, not
// the cancellation the others return; a task still queued does not run.
func TestAttack15PeerConcCancelOnError(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	g, gctx := e.P.Group(context.Background())
	var both sync.WaitGroup
	both.Add(2)
	var secondCause error
	var thirdRan atomic.Bool
	g.Go(func(context.Context, a15Deps) error {
		both.Done()
		both.Wait()
		return errA15
	})
	g.Go(func(ctx context.Context, _ a15Deps) error {
		both.Done()
		both.Wait()
		<-ctx.Done()
		secondCause = context.Cause(ctx)
		return ctx.Err()
	})
	g.Go(func(context.Context, a15Deps) error { thirdRan.Store(true); return nil })
	err := a15Recv(t, a15Go(g.Wait), "Wait")
	if !errors.Is(err, errA15) || errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want only %v", err, errA15)
	}
	if !errors.Is(secondCause, errA15) {
		t.Errorf("the other task's context cause %v, want %v", secondCause, errA15)
	}
	if !errors.Is(context.Cause(gctx), errA15) {
		t.Errorf("group cause %v, want %v", context.Cause(gctx), errA15)
	}
	if thirdRan.Load() {
		t.Errorf("a task queued behind the first failure ran")
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Done != 2 || s.Failed != 2 || s.Dropped != 1 {
		t.Errorf("stats %+v, want Done 2 Failed 2 Dropped 1", s)
	}
}

// pond TestTaskGroupCanceledShouldSkipRemainingTasks and
// TestResultTaskGroupWaitWithError: on one worker, tasks after the failing
// one never run.
func TestAttack15PeerPondGroupSkipsRemaining(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(16))
	g, _ := e.P.Group(context.Background())
	var executed atomic.Int32
	gate := a15NewGate(t)
	g.Go(func(c context.Context, _ a15Deps) error { executed.Add(1); return gate.Wait(c) })
	for i := range 5 {
		g.Go(func(context.Context, a15Deps) error {
			executed.Add(1)
			if i == 2 {
				return errA15
			}
			return nil
		})
	}
	gate.Open()
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, errA15) {
		t.Errorf("Wait = %v, want %v", err, errA15)
	}
	if n := executed.Load(); n != 4 {
		t.Errorf("%d tasks ran, want 4 (the tasks after the failure must not)", n)
	}
}

// pond TestTaskGroupWithCustomContext: a task cancels the group's parent
// context; the tasks still queued do not run, and Wait tells the submitter
// so rather than returning nil.
func TestAttack15PeerPondGroupParentCancelled(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, _ := e.P.Group(ctx)
	var executed atomic.Int32
	gate := a15NewGate(t)
	g.Go(func(c context.Context, _ a15Deps) error { executed.Add(1); return gate.Wait(c) })
	g.Go(func(context.Context, a15Deps) error { executed.Add(1); cancel(); return nil })
	g.Go(func(context.Context, a15Deps) error { executed.Add(1); return nil })
	gate.Open()
	err := a15Recv(t, a15Go(g.Wait), "Wait")
	if n := executed.Load(); n != 2 {
		t.Errorf("%d tasks ran, want 2", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v although a task never ran; want context.Canceled", err)
	}
}

// conc "context error propagates / timed out": a group whose parent times
// out; Wait returns the deadline error its tasks return.
func TestAttack15PeerConcGroupParentTimeout(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	g, gctx := e.P.Group(ctx)
	g.Go(func(c context.Context, _ a15Deps) error { <-c.Done(); return c.Err() })
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want DeadlineExceeded", err)
	}
	if gctx.Err() == nil {
		t.Errorf("group context not done")
	}
}

// conc "propagates panics" and "panics do not exhaust goroutines", in
// fxpool's terms: a panicking task is the group's *PanicError; a Goexit is
// ErrGoexit; the pool keeps its workers.
func TestAttack15PeerConcGroupPanics(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	g, _ := e.P.Group(context.Background())
	for i := range 10 {
		g.Go(func(context.Context, a15Deps) error {
			if i == 5 {
				panic(i)
			}
			return nil
		})
	}
	err := a15Recv(t, a15Go(g.Wait), "Wait")
	var pe *workerpool.PanicError
	if !errors.As(err, &pe) || pe.Value != 5 {
		t.Errorf("Wait = %v, want *PanicError(5)", err)
	}
	g, _ = e.P.Group(context.Background())
	for range 10 {
		g.Go(func(context.Context, a15Deps) error { panic(42) })
	}
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.As(err, &pe) || pe.Value != 42 {
		t.Errorf("Wait = %v, want *PanicError(42)", err)
	}
	g, _ = e.P.Group(context.Background())
	g.Go(func(context.Context, a15Deps) error { runtime.Goexit(); return nil })
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Wait = %v, want ErrGoexit", err)
	}
	// Still two workers, each with its own resources.
	var both sync.WaitGroup
	both.Add(2)
	g, _ = e.P.Group(context.Background())
	for range 2 {
		g.Go(func(_ context.Context, d a15Deps) error {
			d.Res.enter()
			defer d.Res.leave()
			both.Done()
			both.Wait()
			return nil
		})
	}
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); err != nil {
		t.Errorf("Wait after panics: %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}

// errgroup TestGoLimit and conc "limit": never more tasks at once than
// workers, whatever the number of tasks.
func TestAttack15PeerErrgroupGoLimit(t *testing.T) {
	for _, limit := range []int{1, 3, 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			e := a15New(t, workerpool.Workers(limit))
			g, _ := e.P.Group(context.Background())
			var active atomic.Int32
			for range 1 << 10 {
				g.Go(func(_ context.Context, d a15Deps) error {
					d.Res.enter()
					defer d.Res.leave()
					if n := active.Add(1); n > int32(limit) {
						return fmt.Errorf("saw %d active tasks; want <= %d", n, limit)
					}
					runtime.Gosched()
					active.Add(-1)
					return nil
				})
			}
			if err := a15Recv(t, a15Go(g.Wait), "Wait"); err != nil {
				t.Error(err)
			}
			if err := e.Stop(); err != nil {
				t.Fatal(err)
			}
			if s := e.P.Stats(); s.Done != 1<<10 {
				t.Errorf("Done %d", s.Done)
			}
			e.VerifyResources()
		})
	}
}

// errgroup TestTryGo: TryGo takes tasks while there is room, refuses when
// there is none (without failing the group), and takes them again after.
func TestAttack15PeerErrgroupTryGo(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(2))
	g, gctx := e.P.Group(context.Background())
	gate := a15NewGate(t)
	started := make(chan struct{})
	var ran atomic.Int32
	if !g.TryGo(func(c context.Context, _ a15Deps) error { close(started); ran.Add(1); return gate.Wait(c) }) {
		t.Fatalf("TryGo refused with an idle worker")
	}
	a15Recv(t, started, "first task")
	for i := range 2 {
		if !g.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil }) {
			t.Fatalf("TryGo %d refused with room in the queue", i)
		}
	}
	if g.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil }) {
		t.Errorf("TryGo accepted with a full queue")
	}
	if gctx.Err() != nil {
		t.Errorf("a refused TryGo failed the group: %v", context.Cause(gctx))
	}
	gate.Open()
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); err != nil {
		t.Errorf("Wait = %v, want nil", err)
	}
	if ran.Load() != 3 {
		t.Errorf("%d tasks ran, want 3", ran.Load())
	}
	g2, _ := e.P.Group(context.Background())
	a15Eventually(t, "TryGo after Wait", func() bool { return g2.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil }) })
	if err := a15Recv(t, a15Go(g2.Wait), "Wait"); err != nil {
		t.Errorf("Wait = %v", err)
	}
}

// pond TestTaskGroupWithStoppedPool, and a nil context: the group fails at
// once, Wait does not hang.
func TestAttack15PeerPondGroupStoppedPoolAndNilContext(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	//lint:ignore SA1012 testing the nil context
	g, _ := e.P.Group(nil) //nolint:staticcheck
	var ran atomic.Bool
	g.Go(func(context.Context, a15Deps) error { ran.Store(true); return nil })
	if err := a15Recv(t, a15Go(g.Wait), "Wait with nil ctx"); !errors.Is(err, workerpool.ErrNilContext) {
		t.Errorf("Wait = %v, want ErrNilContext", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	g, gctx := e.P.Group(context.Background())
	g.Go(func(context.Context, a15Deps) error { ran.Store(true); return nil })
	if err := a15Recv(t, a15Go(g.Wait), "Wait on a stopped pool"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Wait = %v, want ErrClosed", err)
	}
	if !errors.Is(context.Cause(gctx), workerpool.ErrClosed) {
		t.Errorf("group cause %v, want ErrClosed", context.Cause(gctx))
	}
	if ran.Load() {
		t.Errorf("a task ran")
	}
}

// pond TestTaskGroupWaitShouldNotDeadlockWhenPoolContextCanceledWithQueuedTasks,
// in fxpool's terms: the pool stops with Cancel while a group has a running
// and a queued task; Wait returns ErrClosed, the queued task never runs.
func TestAttack15PeerPondGroupPoolStopsWithQueued(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	g, _ := e.P.Group(context.Background())
	started := make(chan struct{})
	var runningCause error
	var queuedRan atomic.Bool
	g.Go(func(c context.Context, _ a15Deps) error {
		close(started)
		<-c.Done()
		runningCause = context.Cause(c)
		return runningCause
	})
	g.Go(func(context.Context, a15Deps) error { queuedRan.Store(true); return nil })
	a15Recv(t, started, "first task")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := a15Go(func() error { return e.P.Stop(ctx, workerpool.Cancel) })
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Wait = %v, want ErrClosed", err)
	}
	if err := a15Recv(t, stop, "Stop"); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !errors.Is(runningCause, workerpool.ErrClosed) {
		t.Errorf("running task's cause %v, want ErrClosed", runningCause)
	}
	if queuedRan.Load() {
		t.Errorf("a queued task ran under Cancel")
	}
	if s := e.P.Stats(); s.Done != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v, want Done 1 Dropped 1", s)
	}
	if d := e.Dropped(); len(d) != 1 {
		t.Errorf("OnDropped saw %d, want 1", len(d))
	}
}

// errgroup allows Go from inside a task: a group whose tasks submit more
// tasks to the same group; Wait waits for all of them.
func TestAttack15PeerErrgroupTasksSubmitTasks(t *testing.T) {
	e := a15New(t, workerpool.Workers(4), workerpool.QueueSize(128))
	g, _ := e.P.Group(context.Background())
	var ran atomic.Int32
	var spawn func(depth int) func(context.Context, a15Deps) error
	spawn = func(depth int) func(context.Context, a15Deps) error {
		return func(context.Context, a15Deps) error {
			ran.Add(1)
			if depth < 5 {
				g.Go(spawn(depth + 1))
				g.Go(spawn(depth + 1))
			}
			return nil
		}
	}
	g.Go(spawn(0))
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if n := ran.Load(); n != 63 {
		t.Errorf("%d tasks had run when Wait returned, want 63", n)
	}
}
