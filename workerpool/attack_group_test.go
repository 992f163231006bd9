package workerpool_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttackGroupFirstErrorCancelsOthers(t *testing.T) {
	p, _ := atkStart[W](t, "group", workerpool.Workers(2), workerpool.QueueSize(4))
	errFirst := errors.New("first")
	g, gctx := p.Group(context.Background())
	started := make(chan struct{})
	var sawCancel atomic.Bool
	g.Go(func(ctx context.Context, _ W) error {
		close(started)
		select {
		case <-ctx.Done():
			sawCancel.Store(true)
			return errors.New("second")
		case <-time.After(5 * time.Second):
			return nil
		}
	})
	atkWait(t, "first task start", 5*time.Second, started)
	g.Go(func(context.Context, W) error { return errFirst })
	var queuedRan atomic.Int32
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, errFirst) {
			t.Errorf("Wait = %v, want first error", err)
		}
		if errors.Is(err, errors.New("second")) {
			t.Errorf("errors joined")
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Group.Wait hung: first error did not cancel the other task")
	}
	if !sawCancel.Load() {
		t.Error("other task's ctx not cancelled")
	}
	if gctx.Err() == nil {
		t.Error("group ctx not cancelled after failure")
	}
	if c := context.Cause(gctx); !errors.Is(c, errFirst) {
		t.Logf("group ctx cause = %v (doc does not promise the cause)", c)
	}
	_ = queuedRan.Load()
}

// A task queued after the failure, but accepted before, must not run
// (its ctx ended before a worker took it).
func TestAttackGroupQueuedTaskAfterFailureDoesNotRun(t *testing.T) {
	p, _ := atkStart[W](t, "group2", workerpool.Workers(1), workerpool.QueueSize(8))
	g, _ := p.Group(context.Background())
	hold := make(chan struct{})
	started := make(chan struct{})
	g.Go(func(ctx context.Context, _ W) error {
		close(started)
		<-hold
		return errors.New("fail")
	})
	atkWait(t, "start", 5*time.Second, started)
	var ran atomic.Int32
	for range 5 {
		g.Go(func(context.Context, W) error { ran.Add(1); return nil })
	}
	close(hold)
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "fail" {
			t.Errorf("Wait = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait hung")
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("%d tasks queued before the failure ran after it; their ctx had ended", n)
	}
}

func TestAttackGroupPanicAndNilCtx(t *testing.T) {
	p, _ := atkStart[W](t, "group3", workerpool.Workers(2))
	g, _ := p.Group(context.Background())
	g.Go(func(context.Context, W) error { panic("kaboom") })
	var pe *workerpool.PanicError
	if err := g.Wait(); !errors.As(err, &pe) {
		t.Errorf("Wait after panic = %v, want *PanicError", err)
	}
	//nolint:staticcheck
	g2, _ := p.Group(nil) //lint:ignore SA1012 testing nil
	var ran atomic.Bool
	g2.Go(func(context.Context, W) error { ran.Store(true); return nil })
	if err := g2.Wait(); !errors.Is(err, workerpool.ErrNilContext) {
		t.Errorf("Group(nil).Wait = %v, want ErrNilContext", err)
	}
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Log("task of a group failed at once with ErrNilContext still ran")
	}
	// nil task to a group
	g3, _ := p.Group(context.Background())
	g3.Go(nil)
	if err := g3.Wait(); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Group.Go(nil) then Wait = %v, want ErrNilTask", err)
	}
}

// Backpressure: Group.Go blocks while the queue is full and returns when the
// group's ctx ends; no goroutine per task.
func TestAttackGroupBackpressureAndNoGoroutinePerTask(t *testing.T) {
	p, _ := atkStart[W](t, "group4", workerpool.Workers(1), workerpool.QueueSize(1))
	release := atkBlock(t, p, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	g, _ := p.Group(ctx)
	g.Go(func(context.Context, W) error { return nil }) // fills queue
	blocked := make(chan struct{})
	go func() {
		g.Go(func(context.Context, W) error { return nil })
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("Group.Go did not block on a full queue")
	case <-time.After(100 * time.Millisecond):
	}
	cancel(errCause)
	atkWait(t, "Group.Go returns when ctx ends", 5*time.Second, blocked)
	release()
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, errCause) && !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want ctx's error/cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait hung")
	}

	// no goroutine per task
	p2, _ := atkStart[W](t, "group5", workerpool.Workers(1), workerpool.QueueSize(2000))
	rel2 := atkBlock(t, p2, 1)
	before := runtime.NumGoroutine()
	g2, _ := p2.Group(context.Background())
	for range 1000 {
		g2.Go(func(context.Context, W) error { return nil })
	}
	after := runtime.NumGoroutine()
	if after-before > 20 {
		t.Errorf("1000 queued group tasks added %d goroutines", after-before)
	}
	rel2()
	if err := g2.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Group.Wait must return when the pool stops: queued tasks are reported not run.
func TestAttackGroupWaitReturnsOnPoolStop(t *testing.T) {
	p, _ := atkStart[W](t, "group6", workerpool.Workers(1), workerpool.QueueSize(4), workerpool.OnStop(workerpool.Cancel))
	g, _ := p.Group(context.Background())
	started := make(chan struct{})
	g.Go(func(ctx context.Context, _ W) error { close(started); <-ctx.Done(); return context.Cause(ctx) })
	atkWait(t, "start", 5*time.Second, started)
	var ran atomic.Int32
	for range 3 {
		g.Go(func(context.Context, W) error { ran.Add(1); return nil })
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var stopErr error
	go func() {
		defer wg.Done()
		ctx, c := context.WithTimeout(context.Background(), 3*time.Second)
		defer c()
		stopErr = p.Stop(ctx, workerpool.Cancel)
	}()
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Wait = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Group.Wait hung over a stop")
	}
	wg.Wait()
	if stopErr != nil {
		t.Errorf("Stop = %v", stopErr)
	}
	if ran.Load() != 0 {
		t.Errorf("Cancel ran %d queued tasks", ran.Load())
	}
	// Go on a group of a stopped pool fails the group with ErrClosed
	g2, _ := p.Group(context.Background())
	if g2.TryGo(func(context.Context, W) error { return nil }) {
		t.Error("Group.TryGo on stopped pool = true")
	}
	g2.Go(func(context.Context, W) error { return nil })
	if err := g2.Wait(); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("group on stopped pool: Wait = %v, want ErrClosed", err)
	}
}
