package workerpool_test

// Stops, groups and maps at their edges: stops racing resizes and elastic
// pools, concurrent stops with different policies, a stop with no budget,
// a failed pool's queue, callbacks that panic.

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// A stop under Drain of an elastic pool that has shrunk to no worker:
// "with Drain every queued task runs" — someone must open a worker for them.
func TestAttack15PeerElasticDrainFromZero(t *testing.T) {
	e := a15New(t, workerpool.Elastic(0, 2, 5*time.Millisecond), workerpool.QueueSize(64))
	if err := e.P.Do(context.Background(), a15Noop); err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "shrink to 0", func() bool { s := e.P.Stats(); return s.Workers == 0 && s.Closing == 0 })
	outcomes := make(chan workerpool.Outcome, 20)
	for range 20 {
		if err := e.P.GoReport(context.Background(), a15Noop, func(o workerpool.Outcome, _ error) { outcomes <- o }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	counts := map[workerpool.Outcome]int{}
	for range 20 {
		counts[a15Recv(t, outcomes, "report")]++
	}
	if counts[workerpool.Succeeded] != 20 {
		t.Errorf("outcomes under Drain %v, want 20 Succeeded", counts)
	}
	e.VerifyResources()
}

// ants' purge racing submissions: an elastic worker that retires just as a
// task arrives must not strand the task.
func TestAttack15PeerElasticRetireRace(t *testing.T) {
	e := a15New(t, workerpool.Elastic(0, 1, time.Millisecond), workerpool.QueueSize(4))
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
		err := a15Recv(t, a15Go(func() error { return e.P.Do(context.Background(), a15Noop) }), "Do on a retiring elastic pool")
		if err != nil {
			t.Fatalf("Do %d: %v", i, err)
		}
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}

// Resizes racing the app's stop: every worker that opened, however late,
// closes exactly once, and no goroutine is left (goleak in TestMain).
func TestAttack15PeerResizeRacingStop(t *testing.T) {
	for trial := range 10 {
		e := a15New(t, workerpool.Workers(2))
		stopResizing := make(chan struct{})
		resizer := a15Go(func() error {
			r := rand.New(rand.NewPCG(uint64(trial), 9))
			for {
				select {
				case <-stopResizing:
					return nil
				default:
				}
				err := e.P.Resize(1 + r.IntN(8))
				if errors.Is(err, workerpool.ErrClosed) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		})
		time.Sleep(time.Duration(trial) * time.Millisecond)
		if err := e.Stop(); err != nil {
			t.Errorf("trial %d: stop: %v", trial, err)
		}
		close(stopResizing)
		if err := a15Recv(t, resizer, "resizer"); err != nil {
			t.Errorf("trial %d: Resize: %v", trial, err)
		}
		if s := e.P.Stats(); s.Workers != 0 || s.Opening != 0 || s.Closing != 0 {
			t.Errorf("trial %d: stats after stop %+v", trial, s)
		}
		e.VerifyResources()
	}
}

// "A stop while another is under way waits for it and returns its result":
// a Cancel stop after a DropQueued stop does not cancel the running task.
func TestAttack15PeerSecondStopWaitsForFirst(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	gate := a15NewGate(t)
	started := make(chan struct{})
	var errAtRelease error
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error {
		close(started)
		<-gate.C()
		errAtRelease = c.Err()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "running task")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := a15Go(func() error { return e.P.Stop(ctx, workerpool.DropQueued) })
	a15Eventually(t, "the pool refuses", func() bool { return errors.Is(e.P.Go(ctx, a15Noop), workerpool.ErrClosed) })
	second := a15Go(func() error { return e.P.Stop(ctx, workerpool.Cancel) })
	if !a15StillBlocked(second) {
		t.Errorf("the second stop returned before the first")
	}
	gate.Open()
	e1, e2 := a15Recv(t, first, "first stop"), a15Recv(t, second, "second stop")
	if e1 != nil || e2 != nil {
		t.Errorf("stops: %v, %v", e1, e2)
	}
	if errAtRelease != nil {
		t.Errorf("the second stop's Cancel cancelled the running task: %v", errAtRelease)
	}
	e.VerifyResources()
}

// The app's stop waits for a Pool.Stop under way "and returns its result":
// an error of the on-demand stop is the app stop's error too.
func TestAttack15PeerAppStopReturnsPoolStopResult(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
		close(started)
		<-gate.C()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "hung task")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stopErr := e.P.Stop(ctx, workerpool.Drain)
	if stopErr == nil {
		t.Fatalf("Stop with a hung task = nil")
	}
	appErr := e.Stop()
	if appErr == nil || !strings.Contains(appErr.Error(), stopErr.Error()) {
		t.Errorf("app.Stop = %v, want the Pool.Stop result %v", appErr, stopErr)
	}
	gate.Open()
	a15Eventually(t, "the worker closes when it comes back", func() bool {
		for _, r := range e.Opened() {
			if r.closed.Load() != 1 {
				return false
			}
		}
		return true
	})
}

// A stop whose context has already ended: no budget at all. It must not
// hang, the pool must refuse, and every worker still closes exactly once.
func TestAttack15PeerStopWithEndedContext(t *testing.T) {
	e := a15New(t, workerpool.Workers(3), workerpool.QueueSize(16))
	outcomes := make(chan workerpool.Outcome, 16)
	gate := a15NewGate(t)
	for range 3 {
		_ = e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { return gate.Wait(c) })
	}
	for range 10 {
		if err := e.P.GoReport(context.Background(), a15Noop, func(o workerpool.Outcome, _ error) { outcomes <- o }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := a15Recv(t, a15Go(func() error { return e.P.Stop(ctx, workerpool.Drain) }), "Stop with an ended context")
	t.Logf("Stop with an ended context: %v", err)
	if err := e.P.Go(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after the stop = %v", err)
	}
	for range 10 {
		a15Recv(t, outcomes, "report of a queued task")
	}
	a15Eventually(t, "every worker closed", func() bool {
		rs := e.Opened()
		for _, r := range rs {
			if r.closed.Load() != 1 {
				return false
			}
		}
		return len(rs) == 3
	})
	e.VerifyResources()
}

// A failed pool (MaxRestarts) "reports every queued task as not run", and
// OnDropped sees each.
func TestAttack15PeerFailedPoolReportsQueued(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(8), workerpool.MaxRestarts(1, time.Hour))
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "first task")
	for range 2 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error { panic("poison") }); err != nil {
			t.Fatal(err)
		}
	}
	outcomes := make(chan workerpool.Outcome, 3)
	var ran atomic.Int32
	for range 3 {
		if err := e.P.GoReport(context.Background(), func(context.Context, a15Deps) error { ran.Add(1); return nil },
			func(o workerpool.Outcome, _ error) { outcomes <- o }); err != nil {
			t.Fatal(err)
		}
	}
	gate.Open()
	a15Recv(t, e.App.Wait(), "the failed pool asking fx to stop")
	for range 3 {
		if o := a15Recv(t, outcomes, "report"); o != workerpool.NotRun {
			t.Errorf("task queued behind the failure: %v, want NotRun", o)
		}
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks ran on a failed pool", ran.Load())
	}
	_ = e.Stop()
	if n := len(e.Dropped()); n != 3 {
		t.Errorf("OnDropped saw %d, want 3", n)
	}
	e.VerifyResources()
}

// Group tasks submitted after the group failed: their context has ended, so
// they do not run, and Wait still returns the first error.
func TestAttack15PeerGroupGoAfterFailure(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	g, gctx := e.P.Group(context.Background())
	g.Go(func(context.Context, a15Deps) error { return errA15 })
	a15Recv(t, gctx.Done(), "group failure")
	var ran atomic.Int32
	for range 5 {
		g.Go(func(context.Context, a15Deps) error { ran.Add(1); return nil })
	}
	g.TryGo(func(context.Context, a15Deps) error { ran.Add(1); return nil })
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, errA15) {
		t.Errorf("Wait = %v, want the first error", err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks ran after the group failed", ran.Load())
	}
}

// Group.Go blocked on a full queue returns when the group's context ends,
// and that failure is what Wait returns.
func TestAttack15PeerGroupGoBlockedThenCancelled(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(1))
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "blocker")
	if err := e.P.Go(context.Background(), a15Noop); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	g, _ := e.P.Group(ctx)
	var ran atomic.Bool
	blocked := a15Go(func() error { g.Go(func(context.Context, a15Deps) error { ran.Store(true); return nil }); return nil })
	if !a15StillBlocked(blocked) {
		t.Fatalf("Group.Go did not block on a full queue")
	}
	cancel(errA15b)
	a15Recv(t, blocked, "Group.Go after its context ended")
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, errA15b) && !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want the context's cause or Canceled", err)
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Errorf("the task whose submission was abandoned ran")
	}
}

// "Map ... a parallel map that never holds the whole input": with a slow
// consumer, the input is drawn only a bounded distance ahead.
func TestAttack15PeerMapDrawsLazily(t *testing.T) {
	e := a15New(t, workerpool.Workers(4))
	var drawn atomic.Int32
	in := func(yield func(int) bool) {
		for i := range 1000 {
			drawn.Add(1)
			if !yield(i) {
				return
			}
		}
	}
	consumed := 0
	maxAhead := int32(0)
	for v, err := range workerpool.Map(context.Background(), e.P, in, func(_ context.Context, _ a15Deps, x int) (int, error) { return x, nil }, workerpool.InFlight(3)) {
		if err != nil || v != consumed {
			t.Fatalf("element %d: %v %v", consumed, v, err)
		}
		consumed++
		if ahead := drawn.Load() - int32(consumed); ahead > maxAhead {
			maxAhead = ahead
		}
		if consumed%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if consumed != 1000 {
		t.Errorf("consumed %d", consumed)
	}
	if maxAhead > 3+1 {
		t.Errorf("input drawn up to %d elements ahead of the consumer with InFlight(3)", maxAhead)
	}
}

// Map on an ended context yields that one error and runs nothing; Map over a
// pool that stops midway yields the results in order, then ErrClosed, then
// ends.
func TestAttack15PeerMapEndedContextAndStoppedPool(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var ran atomic.Int32
	var errs []error
	for _, err := range workerpool.Map(ctx, e.P, func(yield func(int) bool) { _ = yield(1) && yield(2) }, func(context.Context, a15Deps, int) (int, error) { ran.Add(1); return 0, nil }) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) || ran.Load() != 0 {
		t.Errorf("Map on an ended context yielded %v and ran %d", errs, ran.Load())
	}

	inf := func(yield func(int) bool) {
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	}
	i := 0
	var last error
	done := a15Go(func() error {
		for v, err := range workerpool.Map(context.Background(), e.P, inf, func(_ context.Context, _ a15Deps, x int) (int, error) { return x, nil }) {
			if i == 200 {
				go func() { _ = e.Stop() }()
			}
			if err != nil {
				last = err
				continue
			}
			if last != nil {
				return errors.New("a result after an error that should have ended the loop")
			}
			if v != i {
				return errors.New("results out of order")
			}
			i++
		}
		return nil
	})
	if err := a15Recv(t, done, "Map over a stopping pool"); err != nil {
		t.Error(err)
	}
	if !errors.Is(last, workerpool.ErrClosed) {
		t.Errorf("Map over a stopping pool ended with %v after %d results, want ErrClosed", last, i)
	}
	_ = e.Stop()
}

// Goexit through every way of submitting: Map yields ErrGoexit and goes on;
// GoReport reports Panicked with ErrGoexit.
func TestAttack15PeerGoexitEverywhere(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	i := 0
	for v, err := range workerpool.Map(context.Background(), e.P, func(yield func(int) bool) {
		for x := range 5 {
			if !yield(x) {
				return
			}
		}
	}, func(_ context.Context, _ a15Deps, x int) (int, error) {
		if x == 2 {
			runtime.Goexit()
		}
		return x, nil
	}) {
		if i == 2 {
			if !errors.Is(err, workerpool.ErrGoexit) {
				t.Errorf("element 2: %v, want ErrGoexit", err)
			}
		} else if err != nil || v != i {
			t.Errorf("element %d: %v %v", i, v, err)
		}
		i++
	}
	if i != 5 {
		t.Errorf("%d results", i)
	}
	type rep struct {
		o   workerpool.Outcome
		err error
	}
	ch := make(chan rep, 1)
	if err := e.P.GoReport(context.Background(), func(context.Context, a15Deps) error { runtime.Goexit(); return nil },
		func(o workerpool.Outcome, err error) { ch <- rep{o, err} }); err != nil {
		t.Fatal(err)
	}
	if r := a15Recv(t, ch, "report"); r.o != workerpool.Panicked || !errors.Is(r.err, workerpool.ErrGoexit) {
		t.Errorf("GoReport of a Goexit: %v %v, want Panicked ErrGoexit", r.o, r.err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}

// Callbacks that panic: "a panic in a callback (ErrorHandler, OnDropped,
// Events) is logged, never a crash"; the worker goes on and the submitters
// are still told.
func TestAttack15PeerPanickingCallbacks(t *testing.T) {
	var handled atomic.Int32
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(8), workerpool.OnStop(workerpool.Cancel),
		workerpool.ErrorHandler(func(error) { handled.Add(1); panic("handler") }),
		workerpool.OnDropped(func(context.Context, func(context.Context, a15Deps) error) { panic("dropped") }),
		workerpool.Events(func(workerpool.Event) { panic("events") }),
	)
	for range 3 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error { return errA15 }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.P.Do(context.Background(), a15Noop); err != nil {
		t.Errorf("Do after panicking handlers: %v", err)
	}
	if handled.Load() != 3 {
		t.Errorf("ErrorHandler called %d times, want 3", handled.Load())
	}
	gate := a15NewGate(t)
	started := make(chan struct{})
	_ = e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { close(started); return gate.Wait(c) })
	a15Recv(t, started, "blocker")
	queued := a15Go(func() error { return e.P.Do(context.Background(), a15Noop) })
	a15Eventually(t, "queued", func() bool { return e.P.Stats().Queued == 1 })
	if err := e.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}
	if err := a15Recv(t, queued, "queued Do under a panicking OnDropped"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("queued Do = %v, want ErrClosed", err)
	}
	e.VerifyResources()
}

// A panic in GoReport's report, a user callback like ErrorHandler's: the
// process must survive it (checked in a child process) and the pool go on.
func TestAttack15PeerReportPanics(t *testing.T) {
	if os.Getenv("A15_REPORT_PANIC_CHILD") == "1" {
		e := a15New(t, workerpool.Workers(1))
		if err := e.P.GoReport(context.Background(), a15Noop, func(workerpool.Outcome, error) { panic("report") }); err != nil {
			t.Fatal(err)
		}
		if err := e.P.Do(context.Background(), a15Noop); err != nil {
			t.Errorf("Do after a panicking report: %v", err)
		}
		if err := e.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		e.VerifyResources()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttack15PeerReportPanics$", "-test.count=1")
	cmd.Env = append(os.Environ(), "A15_REPORT_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(string(out), "\n")
		if len(lines) > 12 {
			lines = lines[:12]
		}
		t.Errorf("a panic in GoReport's report: child failed (%v):\n%s", err, strings.Join(lines, "\n"))
	}
}

// Many Future waiters racing a Cancel stop: every Wait returns, each with
// the value or ErrClosed.
func TestAttack15PeerFuturesRacingStop(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(64), workerpool.OnStop(workerpool.Cancel))
	var wg sync.WaitGroup
	var ok, closed atomic.Int32
	for i := range 500 {
		f, err := workerpool.Submit(context.Background(), e.P, func(context.Context, a15Deps) (int, error) { return i, nil })
		if errors.Is(err, workerpool.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 250 {
			go func() { _ = e.Stop() }()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), a15Guard)
			defer cancel()
			v, err := f.Wait(ctx)
			switch {
			case err == nil && v == i:
				ok.Add(1)
			case errors.Is(err, workerpool.ErrClosed):
				closed.Add(1)
			default:
				t.Errorf("future %d: %v %v", i, v, err)
			}
		}()
	}
	wg.Wait()
	_ = e.Stop()
	if s := e.P.Stats(); int(s.Done) != int(ok.Load()) || int(s.Dropped) != int(closed.Load()) {
		t.Errorf("stats %+v, futures ok %d closed %d", s, ok.Load(), closed.Load())
	}
}
