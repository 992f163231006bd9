package workerpool_test

// Ports of ants v2.12.1's ants_test.go.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// ants TestPanicHandler: a panicking fire-and-forget task reaches the error
// handler as a *PanicError, and the pool keeps all its workers.
func TestAttack15PeerAntsPanicHandler(t *testing.T) {
	e := a15New(t, workerpool.Workers(3))
	ctx := context.Background()
	if err := e.P.Go(ctx, func(context.Context, a15Deps) error { panic("Oops!") }); err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "panic reaches the ErrorHandler", func() bool { return len(e.Handled()) == 1 })
	var pe *workerpool.PanicError
	if err := e.Handled()[0]; !errors.As(err, &pe) || pe.Value != "Oops!" {
		t.Errorf("ErrorHandler got %v, want *PanicError(Oops!)", err)
	}
	a15Eventually(t, "all workers serving again", func() bool { s := e.P.Stats(); return s.Workers == 3 && s.Opening == 0 })
	// The pool goes on: 3 tasks at once on 3 workers.
	var wg sync.WaitGroup
	wg.Add(3)
	g, _ := e.P.Group(ctx)
	for range 3 {
		g.Go(func(context.Context, a15Deps) error { wg.Done(); wg.Wait(); return nil })
	}
	if err := a15Recv(t, a15Go(g.Wait), "3 tasks at once after a panic"); err != nil {
		t.Errorf("group after panic: %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Panics != 1 || s.Restarts != 1 || s.Failed != 1 || s.Done != 4 {
		t.Errorf("stats %+v, want Panics 1 Restarts 1 Failed 1 Done 4", s)
	}
	if n := len(e.Opened()); n != 4 {
		t.Errorf("%d resources opened, want 4 (3 + 1 rebuild)", n)
	}
	e.VerifyResources()
}

// ants TestNonblockingSubmit: with no queue, TryGo takes a task while a
// worker is free and refuses once every worker is busy.
func TestAttack15PeerAntsNonblockingSubmit(t *testing.T) {
	const size = 10
	e := a15New(t, workerpool.Workers(size), workerpool.QueueSize(0))
	gate := a15NewGate(t)
	running := make(chan struct{}, size)
	for i := range size {
		ok := e.P.TryGo(func(c context.Context, _ a15Deps) error { running <- struct{}{}; return gate.Wait(c) })
		if !ok {
			t.Fatalf("TryGo %d refused with %d idle workers", i, size-i)
		}
		a15Recv(t, running, "task start")
	}
	if e.P.TryGo(a15Noop) {
		t.Errorf("TryGo accepted with every worker busy and no queue")
	}
	gate.Open()
	a15Eventually(t, "TryGo accepted once a worker is free", func() bool { return e.P.TryGo(a15Noop) })
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
}

// ants TestMaxBlockingSubmit, in fxpool's terms: a Go that blocks on a full
// queue returns its context's error when that ends, and its task never runs.
func TestAttack15PeerAntsBlockingSubmitContext(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(1))
	ctx := context.Background()
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(ctx, func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "first task")
	if err := e.P.Go(ctx, a15Noop); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	task := func(context.Context, a15Deps) error { ran.Store(true); return nil }
	dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := a15Recv(t, a15Go(func() error { return e.P.Go(dctx, task) }), "Go on a full queue"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Go: %v, want DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	blockedDo := a15Go(func() error { return e.P.Do(cctx, task) })
	if !a15StillBlocked(blockedDo) {
		t.Fatalf("Do returned on a full queue")
	}
	ccancel()
	if err := a15Recv(t, blockedDo, "Do on a full queue"); !errors.Is(err, context.Canceled) {
		t.Errorf("Do: %v, want Canceled", err)
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Errorf("a task whose submission gave up ran")
	}
	if s := e.P.Stats(); s.Done+s.Dropped != 2 || s.Done != 2 {
		t.Errorf("stats %+v, want 2 accepted and done", s)
	}
}

// ants TestPoolTuneScaleUp: Resize up while every worker is busy; the new
// workers take the waiting tasks at once.
func TestAttack15PeerAntsTuneScaleUp(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(16))
	ctx := context.Background()
	gate := a15NewGate(t)
	var running, peak atomic.Int32
	task := func(c context.Context, d a15Deps) error {
		d.Res.enter()
		defer d.Res.leave()
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer running.Add(-1)
		return gate.Wait(c)
	}
	for range 2 {
		if err := e.P.Go(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	a15Eventually(t, "2 running", func() bool { return running.Load() == 2 })
	if err := e.P.Resize(3); err != nil {
		t.Fatal(err)
	}
	if err := e.P.Go(ctx, task); err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "3 running after Resize(3)", func() bool { return running.Load() == 3 })
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.P.Go(ctx, task); err != nil {
				t.Errorf("Go: %v", err)
			}
		}()
	}
	if err := e.P.Resize(8); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	a15Eventually(t, "8 running after Resize(8)", func() bool { return running.Load() == 8 })
	if c := e.P.Capacity(); c.Workers != 8 || c.MaxWorkers != 8 {
		t.Errorf("capacity %+v, want 8 workers", c)
	}
	if s := e.P.Stats(); s.Busy != 8 || s.Queued != 0 {
		t.Errorf("stats %+v, want Busy 8 Queued 0", s)
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 8 {
		t.Errorf("peak concurrency %d, want 8", peak.Load())
	}
	if n := len(e.Opened()); n != 8 {
		t.Errorf("%d resources opened, want 8", n)
	}
	e.VerifyResources()
}

// ants TestReleaseWhenRunningPool: two submitters blocked on a busy pool
// while the app stops; both see ErrClosed, every accepted task ran or was
// reported, and the stop does not wait for the submitters.
func TestAttack15PeerAntsReleaseWhileRunning(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(2))
	var accepted, ran atomic.Int32
	firstStarted := make(chan struct{})
	var once sync.Once
	submit := func(n int) <-chan error {
		return a15Go(func() error {
			for range n {
				err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
					once.Do(func() { close(firstStarted) })
					time.Sleep(2 * time.Millisecond)
					ran.Add(1)
					return nil
				})
				if err != nil {
					return err
				}
				accepted.Add(1)
			}
			return nil
		})
	}
	a, b := submit(3000), submit(3000)
	a15Recv(t, firstStarted, "first task")
	if err := e.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	for _, ch := range []<-chan error{a, b} {
		if err := a15Recv(t, ch, "submitter"); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("submitter: %v, want ErrClosed", err)
		}
	}
	notRun := 0
	for _, err := range e.Handled() {
		if errors.Is(err, workerpool.ErrClosed) {
			notRun++
		} else {
			t.Errorf("ErrorHandler: %v", err)
		}
	}
	if int(ran.Load())+notRun != int(accepted.Load()) {
		t.Errorf("accepted %d, ran %d, reported %d", accepted.Load(), ran.Load(), notRun)
	}
	if s := e.P.Stats(); int(s.Done) != int(ran.Load()) || int(s.Dropped) != notRun {
		t.Errorf("stats %+v, ran %d, reported %d", s, ran.Load(), notRun)
	}
	e.VerifyResources()
}

// ants TestReleaseTimeout: a stop with running tasks waits for them and
// returns no error.
func TestAttack15PeerAntsReleaseTimeout(t *testing.T) {
	e := a15New(t, workerpool.Workers(10))
	var done atomic.Int32
	for range 5 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
			time.Sleep(100 * time.Millisecond)
			done.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	a15Eventually(t, "tasks running", func() bool { return e.P.Stats().Busy > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.P.Stop(ctx, workerpool.Drain); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if done.Load() != 5 {
		t.Errorf("%d of 5 running tasks finished before Stop returned", done.Load())
	}
	// The app's stop waits for the stop under way and returns its result.
	if err := e.Stop(); err != nil {
		t.Errorf("app stop after Pool.Stop: %v", err)
	}
	e.VerifyResources()
}

// ants TestAntsPoolWaitToGetWorker, scaled: many submitters of Do against
// few workers; every result comes back, no resource is ever shared.
func TestAttack15PeerAntsManySubmitters(t *testing.T) {
	e := a15New(t, workerpool.Workers(8))
	const callers, each = 64, 200
	var sum atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := int64(c*each + i)
				err := e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error {
					d.Res.enter()
					defer d.Res.leave()
					sum.Add(v)
					if v%97 == 0 {
						return errA15
					}
					return nil
				})
				if (v%97 == 0) != errors.Is(err, errA15) || (v%97 != 0 && err != nil) {
					t.Errorf("Do %d: %v", v, err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "callers")
	const n = callers * each
	if sum.Load() != int64(n*(n-1)/2) {
		t.Errorf("sum %d, want %d", sum.Load(), n*(n-1)/2)
	}
	if s := e.P.Stats(); s.Done != n {
		t.Errorf("Done %d, want %d (every Do has returned)", s.Done, n)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}
