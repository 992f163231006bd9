package workerpool_test

// Ports of pond v2.7.1's pool_test.go and result_test.go.

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/workerpool"
)

// pond TestPoolMetrics: every submitted task runs before the stop returns,
// and the counters add up.
func TestAttack15PeerPondMetrics(t *testing.T) {
	e := a15New(t, workerpool.Workers(4))
	ctx := context.Background()
	const n = 10000
	var executed atomic.Int64
	for i := range n {
		err := e.P.Go(ctx, func(_ context.Context, d a15Deps) error {
			d.Res.enter()
			defer d.Res.leave()
			executed.Add(1)
			if i%2 == 0 {
				return nil
			}
			return errA15
		})
		if err != nil {
			t.Fatalf("Go %d: %v", i, err)
		}
	}
	if err := e.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := executed.Load(); got != n {
		t.Errorf("executed %d, want %d", got, n)
	}
	s := e.P.Stats()
	if s.Done != n || s.Failed != n/2 || s.Dropped != 0 || s.Panics != 0 {
		t.Errorf("stats %+v, want Done %d Failed %d Dropped 0", s, n, n/2)
	}
	if s.Busy != 0 || s.Queued != 0 || s.Workers != 0 {
		t.Errorf("stats after stop %+v: want Busy, Queued and Workers 0", s)
	}
	h := e.Handled()
	if len(h) != n/2 {
		t.Errorf("ErrorHandler got %d errors, want %d", len(h), n/2)
	}
	for _, err := range h {
		if !errors.Is(err, errA15) {
			t.Errorf("ErrorHandler got %v, want %v", err, errA15)
			break
		}
	}
	e.VerifyResources()
}

// pond TestPoolSubmitOnStoppedPool (and tunny TestJobsAfterClose): every way
// of submitting to a stopped pool is refused with ErrClosed.
func TestAttack15PeerPondSubmitOnStoppedPool(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx := context.Background()
	if err := e.P.Go(ctx, a15Noop); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	var ran atomic.Int32
	task := func(context.Context, a15Deps) error { ran.Add(1); return nil }
	if err := e.P.Go(ctx, task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after stop: %v, want ErrClosed", err)
	}
	if err := e.P.Do(ctx, task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do after stop: %v, want ErrClosed", err)
	}
	if e.P.TryGo(task) {
		t.Errorf("TryGo after stop: true")
	}
	if _, err := workerpool.Submit(ctx, e.P, func(context.Context, a15Deps) (int, error) { ran.Add(1); return 1, nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Submit after stop: %v, want ErrClosed", err)
	}
	var reported atomic.Int32
	if err := e.P.GoReport(ctx, task, func(workerpool.Outcome, error) { reported.Add(1) }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("GoReport after stop: %v, want ErrClosed", err)
	}
	g, _ := e.P.Group(ctx)
	g.Go(task)
	if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Group.Wait after stop: %v, want ErrClosed", err)
	}
	var mapErrs []error
	for _, err := range workerpool.Map(ctx, e.P, func(yield func(int) bool) { yield(1) }, func(context.Context, a15Deps, int) (int, error) { ran.Add(1); return 0, nil }) {
		mapErrs = append(mapErrs, err)
	}
	if len(mapErrs) != 1 || !errors.Is(mapErrs[0], workerpool.ErrClosed) {
		t.Errorf("Map after stop yielded %v, want one ErrClosed", mapErrs)
	}
	if err := e.P.Resize(3); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize after stop: %v, want ErrClosed", err)
	}
	if err := e.P.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after stop: %v, want ErrClosed", err)
	}
	if c := e.P.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity after stop %+v, want Workers 0", c)
	}
	sctx, cancel := context.WithTimeout(ctx, a15Guard)
	defer cancel()
	if err := e.App.Start(sctx); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("second app.Start: %v, want ErrClosed", err)
	}
	if ran.Load() != 0 || reported.Load() != 0 {
		t.Errorf("a refused task ran (%d) or was reported (%d)", ran.Load(), reported.Load())
	}
	e.VerifyResources()
}

// pond TestPoolSubmitWhileStopping: a task running while its pool stops
// finds the pool refusing, and the stop still succeeds.
func TestAttack15PeerPondSubmitWhileStopping(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx := context.Background()
	started := make(chan struct{})
	inner := make(chan [3]error, 1)
	var accepted, ranInner atomic.Int32
	outer, err := workerpool.Submit(ctx, e.P, func(tctx context.Context, _ a15Deps) (int, error) {
		close(started)
		// Wait until the pool refuses: Go is accepted until the stop begins,
		// and under Drain what it accepted still runs.
		for {
			err := e.P.Go(context.Background(), func(context.Context, a15Deps) error { ranInner.Add(1); return nil })
			if err != nil {
				if !errors.Is(err, workerpool.ErrClosed) {
					inner <- [3]error{err}
					return 0, err
				}
				break
			}
			accepted.Add(1)
			runtime.Gosched()
		}
		var res [3]error
		res[0] = e.P.Do(context.Background(), a15Noop)
		_, res[1] = workerpool.Submit(context.Background(), e.P, func(context.Context, a15Deps) (int, error) { return 0, nil })
		res[2] = e.P.GoReport(context.Background(), a15Noop, func(workerpool.Outcome, error) {})
		inner <- res
		return 7, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "outer task start")
	stopErr := a15Go(e.Stop)
	res := a15Recv(t, inner, "submissions while stopping")
	for i, err := range res {
		if !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("submission %d while stopping: %v, want ErrClosed", i, err)
		}
	}
	if err := a15Recv(t, stopErr, "stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, a15Guard)
	defer cancel()
	if v, err := outer.Wait(wctx); v != 7 || err != nil {
		t.Errorf("outer task: %v %v, want 7 <nil>", v, err)
	}
	if ranInner.Load() != accepted.Load() {
		t.Errorf("under Drain %d accepted inner tasks, %d ran", accepted.Load(), ranInner.Load())
	}
	e.VerifyResources()
}

// pond TestPoolSubmitWhileStoppingHasNoRace: thousands of submitters racing
// a stop; every accepted task runs or is reported, and the counts add up.
func TestAttack15PeerPondSubmitWhileStoppingNoRace(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(8))
	var accepted, refused, ran atomic.Int64
	var wg sync.WaitGroup
	startLine := make(chan struct{})
	for i := range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startLine
			if i == 500 {
				_ = e.Stop()
			}
			err := e.P.Go(context.Background(), func(context.Context, a15Deps) error { ran.Add(1); return nil })
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, workerpool.ErrClosed):
				refused.Add(1)
			default:
				t.Errorf("Go: %v", err)
			}
		}()
	}
	close(startLine)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "submitters")
	if err := e.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	notRun := 0
	for _, err := range e.Handled() {
		if errors.Is(err, workerpool.ErrClosed) {
			notRun++
		}
	}
	if got := ran.Load() + int64(notRun); got != accepted.Load() {
		t.Errorf("accepted %d, ran %d + reported not run %d", accepted.Load(), ran.Load(), notRun)
	}
	s := e.P.Stats()
	if int64(s.Done+s.Dropped) != accepted.Load() || int64(s.Done) != ran.Load() {
		t.Errorf("stats %+v: Done+Dropped != accepted %d or Done != ran %d", s, accepted.Load(), ran.Load())
	}
	if accepted.Load()+refused.Load() != 2000 {
		t.Errorf("accepted %d + refused %d != 2000", accepted.Load(), refused.Load())
	}
	e.VerifyResources()
}

// pond TestPoolWithQueueSizeZero: with QueueSize(0) a submission waits for a
// free worker; TryGo refuses while the worker is busy; nothing is queued.
func TestAttack15PeerPondQueueSizeZero(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(0))
	ctx := context.Background()
	if c := e.P.Capacity(); c.Queue != 0 || c.InFlight() != 1 {
		t.Errorf("capacity %+v InFlight %d, want Queue 0 InFlight 1", c, c.InFlight())
	}
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(ctx, func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "first task")
	secondRan := make(chan struct{})
	second := a15Go(func() error {
		return e.P.Go(ctx, func(context.Context, a15Deps) error { close(secondRan); return nil })
	})
	if !a15StillBlocked(second) {
		t.Fatalf("Go returned while the only worker was busy and QueueSize is 0")
	}
	if s := e.P.Stats(); s.Queued != 0 {
		t.Errorf("Queued %d with QueueSize(0)", s.Queued)
	}
	var tryRan atomic.Bool
	if e.P.TryGo(func(context.Context, a15Deps) error { tryRan.Store(true); return nil }) {
		t.Errorf("TryGo accepted a task with a busy worker and QueueSize(0)")
	}
	gate.Open()
	if err := a15Recv(t, second, "second Go"); err != nil {
		t.Fatalf("second Go: %v", err)
	}
	a15Recv(t, secondRan, "second task")
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Done != 2 || s.Dropped != 0 || tryRan.Load() {
		t.Errorf("stats %+v (TryGo ran: %v), want Done 2", s, tryRan.Load())
	}
}

// pond TestPoolWithQueueSizeOne: one task runs, one waits, the next
// submitters block; the queue is first in, first out.
func TestAttack15PeerPondQueueSizeOne(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(1))
	ctx := context.Background()
	completed := make(chan int, 10)
	g1, g2 := a15NewGate(t), a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(ctx, func(c context.Context, _ a15Deps) error {
		close(started)
		_ = g1.Wait(c)
		completed <- 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "task 1")
	if err := e.P.Go(ctx, func(c context.Context, _ a15Deps) error { _ = g2.Wait(c); completed <- 2; return nil }); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Queued != 1 {
		t.Errorf("Queued %d, want 1", s.Queued)
	}
	third := a15Go(func() error { return e.P.Go(ctx, func(context.Context, a15Deps) error { completed <- 3; return nil }) })
	if !a15StillBlocked(third) {
		t.Fatalf("Go returned with a full queue")
	}
	fourth := a15Go(func() error { return e.P.Go(ctx, func(context.Context, a15Deps) error { completed <- 4; return nil }) })
	if e.P.TryGo(a15Noop) {
		t.Errorf("TryGo accepted with a full queue")
	}
	g1.Open()
	g2.Open()
	for _, ch := range []<-chan error{third, fourth} {
		if err := a15Recv(t, ch, "blocked Go"); err != nil {
			t.Errorf("blocked Go: %v", err)
		}
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	close(completed)
	var results []int
	for r := range completed {
		results = append(results, r)
	}
	if len(results) != 4 || results[0] != 1 || results[1] != 2 || results[2]+results[3] != 7 {
		t.Errorf("completion order %v, want [1 2 {3,4}]", results)
	}
}

// pond TestPoolTrySubmit: TryGo takes a task while a worker or the queue has
// room, refuses otherwise and after the stop.
func TestAttack15PeerPondTryGo(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(1))
	gate := a15NewGate(t)
	started := make(chan struct{})
	var ran atomic.Int32
	if !e.P.TryGo(func(c context.Context, _ a15Deps) error { close(started); ran.Add(1); return gate.Wait(c) }) {
		t.Fatalf("TryGo refused with an idle worker")
	}
	a15Recv(t, started, "first task")
	if !e.P.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil }) {
		t.Errorf("TryGo refused with an empty queue")
	}
	if e.P.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil }) {
		t.Errorf("TryGo accepted with a full queue")
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if e.P.TryGo(a15Noop) {
		t.Errorf("TryGo accepted after stop")
	}
	if s := e.P.Stats(); s.Done != 2 || ran.Load() != 2 {
		t.Errorf("stats %+v ran %d, want 2 done", s, ran.Load())
	}
}

// pond TestStopAndWaitWithGoexit and TestTaskInvokesGoexitAndPoolRecovers:
// a task that calls runtime.Goexit is an error, the worker goes on, and the
// stop does not hang.
func TestAttack15PeerPondGoexit(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	ctx := context.Background()
	if err := e.P.Go(ctx, func(context.Context, a15Deps) error { runtime.Goexit(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.P.Do(ctx, a15Noop); err != nil {
		t.Errorf("Do after a Goexit: %v", err)
	}
	if err := e.P.Do(ctx, func(context.Context, a15Deps) error { runtime.Goexit(); return nil }); !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Do of a Goexit: %v, want ErrGoexit", err)
	}
	var gen int
	if err := e.P.Do(ctx, func(_ context.Context, d a15Deps) error { gen = d.W.Generation; return nil }); err != nil {
		t.Errorf("Do after second Goexit: %v", err)
	}
	if gen != 2 {
		t.Errorf("generation after two Goexits %d, want 2", gen)
	}
	if err := a15Recv(t, a15Go(e.Stop), "stop after Goexit"); err != nil {
		t.Errorf("stop: %v", err)
	}
	s := e.P.Stats()
	if s.Done != 4 || s.Failed != 2 || s.Panics != 2 || s.Restarts != 2 {
		t.Errorf("stats %+v, want Done 4 Failed 2 Panics 2 Restarts 2", s)
	}
	h := e.Handled()
	if len(h) != 1 || !errors.Is(h[0], workerpool.ErrGoexit) {
		t.Errorf("ErrorHandler got %v, want one ErrGoexit", h)
	}
	if n := len(e.Opened()); n != 3 {
		t.Errorf("%d generations opened, want 3", n)
	}
	e.VerifyResources()
}

// pond TestPoolStopAndWaitShouldNotDeadlockWhenContextCanceledWithQueuedTasks,
// in fxpool's terms: a Do whose context ends while its task is queued returns
// that context's error, the task never runs, and it counts as dropped, not
// as handed to OnDropped.
func TestAttack15PeerPondContextCanceledWhileQueued(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(4))
	ctx := context.Background()
	gate := a15NewGate(t)
	started := make(chan struct{})
	first := a15Go(func() error {
		return e.P.Do(ctx, func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) })
	})
	a15Recv(t, started, "first task")
	qctx, cancel := context.WithCancel(ctx)
	var secondRan atomic.Bool
	second := a15Go(func() error {
		return e.P.Do(qctx, func(context.Context, a15Deps) error { secondRan.Store(true); return nil })
	})
	a15Eventually(t, "second task queued", func() bool { return e.P.Stats().Queued == 1 })
	cancel()
	if err := a15Recv(t, second, "Do of a cancelled queued task"); !errors.Is(err, context.Canceled) {
		t.Errorf("Do: %v, want context.Canceled", err)
	}
	gate.Open()
	if err := a15Recv(t, first, "first Do"); err != nil {
		t.Errorf("first Do: %v", err)
	}
	if err := e.P.Do(ctx, a15Noop); err != nil { // after the cancelled one, FIFO
		t.Errorf("third Do: %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if secondRan.Load() {
		t.Errorf("a task whose context ended while queued ran")
	}
	if s := e.P.Stats(); s.Done != 2 || s.Dropped != 1 {
		t.Errorf("stats %+v, want Done 2 Dropped 1", s)
	}
	if d := e.Dropped(); len(d) != 0 {
		t.Errorf("OnDropped saw %d tasks, want 0 (its submitter gave up)", len(d))
	}
}

// pond TestResultPoolSubmitAndWait, TestResultPoolSubmitTaskWithPanic and
// TestResultPoolSubmitContextCanceled on Submit and Future.
func TestAttack15PeerPondFuture(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx := context.Background()
	gate := a15NewGate(t)
	f, err := workerpool.Submit(ctx, e.P, func(c context.Context, _ a15Deps) (string, error) {
		if err := gate.Wait(c); err != nil {
			return "", err
		}
		return "output", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Wait(wctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
	select {
	case <-f.Done():
		t.Errorf("Done closed before the task finished")
	default:
	}
	gate.Open()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gctx, cancel := context.WithTimeout(ctx, a15Guard)
			defer cancel()
			if v, err := f.Wait(gctx); v != "output" || err != nil {
				t.Errorf("concurrent Wait: %q %v", v, err)
			}
		}()
	}
	wg.Wait()
	a15Recv(t, f.Done(), "future done")

	pf, err := workerpool.Submit(ctx, e.P, func(context.Context, a15Deps) (int, error) { panic("dummy panic") })
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, a15Guard)
	defer gcancel()
	_, err = pf.Wait(gctx)
	var pe *workerpool.PanicError
	if !errors.As(err, &pe) || pe.Value != "dummy panic" || len(pe.Stack) == 0 {
		t.Errorf("Wait of a panicking task: %v, want *PanicError with value and stack", err)
	}
	ef, err := workerpool.Submit(ctx, e.P, func(context.Context, a15Deps) (int, error) { return 3, errA15 })
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ef.Wait(gctx); v != 3 || !errors.Is(err, errA15) {
		t.Errorf("Wait of a failing task: %v %v, want 3 and its error", v, err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}
