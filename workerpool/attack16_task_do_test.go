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

// Do whose caller gives up while the task is queued: Do returns ctx's error
// before a worker is free, the task never runs, OnDropped and the
// ErrorHandler never hear of it, and Stats counts it in Dropped.
func TestA16tDoGiveUpWhileQueuedNeverRuns(t *testing.T) {
	var errs a16tErrs
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4),
		workerpool.ErrorHandler(errs.handle), dropped.option())
	b := a16tOccupy(t, p, 1)

	var ran atomic.Bool
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), a16tKey{}, "gone"))
	cause := errors.New("a16t: caller left")
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx, func(context.Context, resources.Worker) error { ran.Store(true); return nil })
	}()
	a16tEventually(t, "the Do task to be queued", func() bool { return p.Stats().Queued == 1 })
	cancel(cause)
	err := a16tRecv(t, done, "Do to return after its context ended, the worker still busy")
	if !errors.Is(err, context.Canceled) && !errors.Is(err, cause) {
		t.Fatalf("Do = %v, want ctx's error", err)
	}
	b.open()
	a16tBarrier(t, p)
	if ran.Load() {
		t.Fatal("a Do task whose caller gave up while it was queued ran")
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if ran.Load() {
		t.Fatal("a Do task whose caller gave up ran during the drain")
	}
	st := p.Stats()
	if st.Done != 2 || st.Dropped != 1 {
		t.Fatalf("Stats Done=%d Dropped=%d, want 2 and 1 (blocker+barrier ran, the abandoned task dropped)", st.Done, st.Dropped)
	}
	if n := dropped.n.Load(); n != 0 {
		t.Fatalf("OnDropped saw %d tasks; the doc: not a task whose submitter's context ended while it was queued", n)
	}
	if e := errs.all(); len(e) != 0 {
		t.Fatalf("ErrorHandler heard of a Do task: %v", e)
	}
}

// Do's task carries ctx's values and ends with ctx's cause; Do with an
// already-ended ctx runs nothing.
func TestA16tDoContextCauseValuesAndDeadCtx(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2))
	cause := errors.New("a16t: client went away")
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), a16tKey{}, "req-1"))
	gotCause := make(chan error, 1)
	gotVal := make(chan any, 1)
	inTask := make(chan struct{})
	release := make(chan struct{})
	taskDone := make(chan struct{})
	doErr := make(chan error, 1)
	go func() {
		doErr <- p.Do(ctx, func(tctx context.Context, _ resources.Worker) error {
			defer close(taskDone)
			gotVal <- tctx.Value(a16tKey{})
			close(inTask)
			<-tctx.Done()
			gotCause <- context.Cause(tctx)
			<-release
			return nil
		})
	}()
	a16tRecv(t, inTask, "task to start")
	cancel(cause)
	if v := a16tRecv(t, gotVal, "value"); v != "req-1" {
		t.Fatalf("task value = %v", v)
	}
	if c := a16tRecv(t, gotCause, "task ctx to end"); c != cause {
		t.Fatalf("task cause = %v, want %v", c, cause)
	}
	if err := a16tRecv(t, doErr, "Do to return when ctx ended"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	close(release)
	a16tRecv(t, taskDone, "task to finish")

	// An already-ended ctx: the task does not run.
	dead, cancelDead := context.WithCancel(context.Background())
	cancelDead()
	var ran atomic.Bool
	err := p.Do(dead, func(context.Context, resources.Worker) error { ran.Store(true); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do(dead ctx) = %v", err)
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Fatal("Do with an already-cancelled ctx ran its task")
	}
}

// A task that returns (does not raise) a *PanicError or ErrGoexit — as a
// task calling Do on a pool whose task panicked would — ran and returned an
// error: Outcome Failed, not Panicked, and it is not counted in Panics.
func TestA16tReturnedPanicErrorIsFailedNotPanicked(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2))
	ctx := context.Background()

	type rep struct {
		o   workerpool.Outcome
		err error
	}
	reps := make(chan rep, 4)
	report := func(o workerpool.Outcome, err error) { reps <- rep{o, err} }

	// outer task: calls Do on the same pool (two workers) whose task panics,
	// and returns that error.
	err := p.GoReport(ctx, func(tctx context.Context, _ resources.Worker) error {
		return p.Do(tctx, func(context.Context, resources.Worker) error { panic("a16t inner") })
	}, report)
	if err != nil {
		t.Fatal(err)
	}
	r := a16tRecv(t, reps, "report 1")
	var pe *workerpool.PanicError
	if !errors.As(r.err, &pe) {
		t.Fatalf("outer error = %v, want the inner *PanicError returned", r.err)
	}
	if r.o != workerpool.Failed {
		t.Errorf("outer task returned a *PanicError: Outcome = %v, want Failed (it ran and returned an error)", r.o)
	}

	err = p.GoReport(ctx, func(tctx context.Context, _ resources.Worker) error {
		return p.Do(tctx, func(context.Context, resources.Worker) error { runtime.Goexit(); return nil })
	}, report)
	if err != nil {
		t.Fatal(err)
	}
	r = a16tRecv(t, reps, "report 2")
	if !errors.Is(r.err, workerpool.ErrGoexit) {
		t.Fatalf("outer error = %v, want ErrGoexit returned", r.err)
	}
	if r.o != workerpool.Failed {
		t.Errorf("outer task returned ErrGoexit: Outcome = %v, want Failed", r.o)
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Panics != 2 {
		t.Errorf("Stats.Panics = %d, want 2 (the two inner tasks only)", st.Panics)
	}
	if st.Done != 4 || st.Failed != 4 {
		t.Errorf("Stats Done=%d Failed=%d, want 4 and 4", st.Done, st.Failed)
	}
}

// Future.Wait: a ctx that ends returns ctx's error and the future can be
// waited for again; concurrent waiters all get the one result; Done closes.
func TestA16tFutureWaitAgainAndConcurrent(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1))
	release := make(chan struct{})
	f, err := workerpool.Submit(context.Background(), p, func(context.Context, resources.Worker) (int, error) {
		<-release
		return 42, errors.New("a16t: with value")
	})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Wait(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(ended ctx) = %v", err)
	}
	select {
	case <-f.Done():
		t.Fatal("Done closed before the task finished")
	default:
	}
	var wg sync.WaitGroup
	vals := make([]int, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
			defer cancel()
			vals[i], errs[i] = f.Wait(ctx)
		}()
	}
	close(release)
	wg.Wait()
	a16tRecv(t, f.Done(), "Done")
	for i := range 8 {
		if vals[i] != 42 || errs[i] == nil || errs[i].Error() != "a16t: with value" {
			t.Fatalf("waiter %d: %v %v", i, vals[i], errs[i])
		}
	}
}

// Submit whose ctx ends while its task is queued: the task does not run,
// the future resolves with an error, not a value.
func TestA16tSubmitGiveUpWhileQueued(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1))
	b := a16tOccupy(t, p, 1)
	cause := errors.New("a16t: gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	var ran atomic.Bool
	f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (string, error) {
		ran.Store(true)
		return "ran", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel(cause)
	b.open()
	wctx, wcancel := context.WithTimeout(context.Background(), a16tGuard)
	defer wcancel()
	v, err := f.Wait(wctx)
	if errors.Is(err, wctx.Err()) && wctx.Err() != nil {
		t.Fatal("hang guard: future of an abandoned task never resolved")
	}
	if err == nil || v != "" {
		t.Fatalf("Wait = %q, %v; want an error", v, err)
	}
	if !errors.Is(err, cause) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait error = %v, want the submitter's cause or context.Canceled", err)
	}
	a16tBarrier(t, p)
	if ran.Load() {
		t.Fatal("task ran though its Submit ctx ended while queued")
	}
}
