package workerpool_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// The first error is Wait's, not joined with the others; the group's
// context's cause is that first error; queued tasks of a failed group do
// not run; the context ends once Wait returns, also after success.
func TestA16tGroupFirstErrorCauseAndQueued(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(16))
	g, gctx := p.Group(context.Background())
	first := errors.New("a16t: first")
	second := errors.New("a16t: second")
	var queuedRan atomic.Int32
	failed := make(chan struct{})
	secondIn := make(chan struct{})
	g.Go(func(ctx context.Context, _ resources.Worker) error {
		close(secondIn)
		<-ctx.Done()
		return second
	})
	a16tRecv(t, secondIn, "second task to start")
	g.Go(func(context.Context, resources.Worker) error {
		defer close(failed)
		return first
	})
	a16tRecv(t, failed, "first failure")
	a16tRecv(t, gctx.Done(), "group ctx to end at the first failure")
	if c := context.Cause(gctx); c != first {
		t.Errorf("Cause(gctx) = %v, want the first error", c)
	}
	// Submitted after the failure: its context has ended, it must not run.
	for range 5 {
		g.Go(func(context.Context, resources.Worker) error { queuedRan.Add(1); return nil })
	}
	g.TryGo(func(context.Context, resources.Worker) error { queuedRan.Add(1); return nil })
	err := g.Wait()
	if err != first {
		t.Errorf("Wait = %v, want exactly the first error (not joined)", err)
	}
	if errors.Is(err, second) {
		t.Errorf("Wait joined another task's error: %v", err)
	}
	a16tBarrier(t, p)
	if n := queuedRan.Load(); n != 0 {
		t.Errorf("%d tasks submitted to a failed group ran", n)
	}

	g2, g2ctx := p.Group(context.Background())
	g2.Go(func(context.Context, resources.Worker) error { return nil })
	if err := g2.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g2ctx.Done():
	default:
		t.Error("group context not cancelled after Wait returned")
	}
}

// A queued group task kept from running by the end of the parent context:
// Wait returns the parent's cause (its task never ran), not nil.
func TestA16tGroupParentCauseForQueuedTask(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4))
	cause := errors.New("a16t: request gone")
	parent, cancel := context.WithCancelCause(context.Background())
	g, gctx := p.Group(parent)
	in := make(chan struct{})
	release := make(chan struct{})
	var ranB atomic.Bool
	g.Go(func(context.Context, resources.Worker) error {
		close(in)
		<-release // ignores its context on purpose
		return nil
	})
	a16tRecv(t, in, "A to start")
	g.Go(func(context.Context, resources.Worker) error { ranB.Store(true); return nil })
	cancel(cause)
	a16tRecv(t, gctx.Done(), "group ctx")
	if c := context.Cause(gctx); c != cause {
		t.Errorf("Cause(gctx) = %v, want the parent's", c)
	}
	close(release)
	err := g.Wait()
	if !errors.Is(err, cause) {
		t.Errorf("Wait = %v, want the parent's cause (B never ran)", err)
	}
	a16tBarrier(t, p)
	if ranB.Load() {
		t.Error("queued task of a group whose parent ended ran")
	}
}

// Panics and Goexits fail the group; a nil ctx and a nil task are errors of
// the group; TryGo that finds no room does not fail it.
func TestA16tGroupPanicGoexitNilAndTryGo(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(1))
	g, _ := p.Group(context.Background())
	g.Go(func(context.Context, resources.Worker) error { panic("a16t boom") })
	var pe *workerpool.PanicError
	if err := g.Wait(); !errors.As(err, &pe) {
		t.Errorf("Wait after panic = %v, want *PanicError", err)
	}
	g, _ = p.Group(context.Background())
	g.Go(func(context.Context, resources.Worker) error { runtime.Goexit(); return nil })
	if err := g.Wait(); !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Wait after Goexit = %v, want ErrGoexit", err)
	}
	//nolint:staticcheck // a nil context on purpose
	g, _ = p.Group(nil) //lint:ignore SA1012 on purpose
	var ran atomic.Bool
	g.Go(func(context.Context, resources.Worker) error { ran.Store(true); return nil })
	if err := g.Wait(); !errors.Is(err, workerpool.ErrNilContext) {
		t.Errorf("Wait of a nil-ctx group = %v, want ErrNilContext", err)
	}
	g, _ = p.Group(context.Background())
	g.Go(nil)
	if err := g.Wait(); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Wait after Go(nil) = %v, want ErrNilTask", err)
	}

	// TryGo without room: false, and the group is not failed.
	b := a16tOccupy(t, p, 1)
	g, gctx := p.Group(context.Background())
	var okRan atomic.Int32
	if !g.TryGo(func(context.Context, resources.Worker) error { okRan.Add(1); return nil }) {
		t.Fatal("TryGo refused with a free queue slot")
	}
	if g.TryGo(func(context.Context, resources.Worker) error { okRan.Add(1); return nil }) {
		t.Fatal("TryGo took a task with the worker busy and the queue (1) full")
	}
	if gctx.Err() != nil {
		t.Errorf("a refused TryGo failed the group: %v", context.Cause(gctx))
	}
	b.open()
	if err := g.Wait(); err != nil {
		t.Errorf("Wait = %v, want nil", err)
	}
	if okRan.Load() != 1 {
		t.Errorf("ran %d, want 1", okRan.Load())
	}
	a16tBarrier(t, p)
	if ran.Load() {
		t.Error("task of a group with a nil context ran")
	}
}

// A Cancel stop while a group's tasks are running and queued: Wait returns
// ErrClosed, the running task's context ends with cause ErrClosed, queued
// ones do not run, and OnDropped sees the dropped ones with the values of
// the group's context.
func TestA16tGroupStopCancel(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(8), dropped.option())
	g, _ := p.Group(context.WithValue(context.Background(), a16tKey{}, "grp"))
	in := make(chan struct{})
	causeSeen := make(chan error, 1)
	g.Go(func(ctx context.Context, _ resources.Worker) error {
		close(in)
		<-ctx.Done()
		causeSeen <- context.Cause(ctx)
		return context.Cause(ctx)
	})
	a16tRecv(t, in, "running group task")
	var ran atomic.Int32
	for range 3 {
		g.Go(func(context.Context, resources.Worker) error { ran.Add(1); return nil })
	}
	if err := a16tStop(t, p, workerpool.Cancel); err != nil {
		t.Fatal(err)
	}
	if c := a16tRecv(t, causeSeen, "cause"); !errors.Is(c, workerpool.ErrClosed) {
		t.Errorf("running group task's cause = %v, want ErrClosed", c)
	}
	if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Wait = %v, want ErrClosed", err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued group tasks ran under Cancel", ran.Load())
	}
	if got := dropped.get("grp"); got != 3 {
		t.Errorf("OnDropped saw %d group tasks with the group's values, want 3", got)
	}
	// A group made after the stop: Go fails it with ErrClosed.
	g, _ = p.Group(context.Background())
	g.Go(func(context.Context, resources.Worker) error { ran.Add(1); return nil })
	if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Wait after stop = %v, want ErrClosed", err)
	}
}

// Group.Go blocked on a full queue returns when the group's context ends
// (a sibling failed), failing nothing more and running nothing.
func TestA16tGroupGoBlockedUnblocksOnFailure(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(1))
	b := a16tOccupy(t, p, 1) // the worker busy outside the group
	g, gctx := p.Group(context.Background())
	first := errors.New("a16t: first")
	var ran atomic.Int32
	g.Go(func(context.Context, resources.Worker) error { ran.Add(1); return first }) // queued: the queue is full now
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		g.Go(func(context.Context, resources.Worker) error { ran.Add(100); return nil }) // blocks: no room
	}()
	// Free the worker: the first task runs and fails, which must free the
	// blocked Go (its context ended) — or it got in, and must not run.
	b.open()
	a16tRecv(t, gctx.Done(), "group ctx")
	a16tRecv(t, blocked, "blocked Group.Go to return")
	if err := g.Wait(); err != first {
		t.Errorf("Wait = %v, want the first error", err)
	}
	a16tBarrier(t, p)
	if n := ran.Load(); n != 1 {
		t.Errorf("ran = %d, want 1 (the failing one only)", n)
	}
}

// Nested groups on one pool: an inner group's failure cancels the inner
// group only; the outer gets it through the task that waited for it.
func TestA16tNestedGroups(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(16))
	outer, octx := p.Group(context.Background())
	innerErr := errors.New("a16t: inner")
	var mu sync.Mutex
	outer.Go(func(ctx context.Context, _ resources.Worker) error {
		inner, ictx := p.Group(ctx)
		inner.Go(func(context.Context, resources.Worker) error { return innerErr })
		err := inner.Wait()
		mu.Lock()
		defer mu.Unlock()
		if ictx.Err() == nil {
			t.Error("inner ctx alive after Wait")
		}
		return err
	})
	if err := outer.Wait(); err != innerErr {
		t.Errorf("outer Wait = %v, want inner's error", err)
	}
	if context.Cause(octx) != innerErr {
		t.Errorf("outer cause = %v", context.Cause(octx))
	}
}

// errgroup's shape: tasks that all ran and returned nil make Wait nil, even
// if the parent context ends afterwards, before Wait; a group made from an
// ended parent runs nothing and Wait gives the parent's cause.
func TestA16tGroupParentEndsAfterSuccessOrBefore(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(4))
	parent, cancel := context.WithCancel(context.Background())
	g, _ := p.Group(parent)
	var done sync.WaitGroup
	done.Add(3)
	for range 3 {
		g.Go(func(context.Context, resources.Worker) error { done.Done(); return nil })
	}
	w := make(chan struct{})
	go func() { done.Wait(); close(w) }()
	a16tRecv(t, w, "tasks")
	a16tBarrier(t, p) // the tasks' results are in (one-worker barrier is enough as a settle)
	cancel()
	if err := g.Wait(); err != nil {
		t.Errorf("Wait = %v; every task ran and succeeded before the parent ended", err)
	}

	cause := errors.New("a16t: already gone")
	dead, cancelDead := context.WithCancelCause(context.Background())
	cancelDead(cause)
	g, _ = p.Group(dead)
	var ran atomic.Bool
	g.Go(func(context.Context, resources.Worker) error { ran.Store(true); return nil })
	if err := g.Wait(); !errors.Is(err, cause) {
		t.Errorf("Wait of a group of an ended parent = %v, want its cause", err)
	}
	a16tBarrier(t, p)
	if ran.Load() {
		t.Error("a task of a group whose parent had ended ran")
	}
}
