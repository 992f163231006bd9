package workerpool_test

// Ports of the remaining peer behaviours: stop policies (pond's Stop,
// ants' Release), Map against conc's ResultPool, recycling, elastic sizing
// (ants' purge of idle workers), tasks that submit tasks, nil inputs.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// pond's Stop with queued tasks, fxpool's Cancel: the running task's context
// ends with ErrClosed, every queued task is reported as not run through the
// way it was submitted, and OnDropped sees each with its submitter's context.
func TestAttack15PeerStopCancelReportsQueued(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(8), workerpool.OnStop(workerpool.Cancel))
	bg := context.Background()
	started := make(chan struct{})
	var runningCause error
	if err := e.P.Go(bg, func(c context.Context, _ a15Deps) error {
		close(started)
		<-c.Done()
		runningCause = context.Cause(c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "running task")
	var ran atomic.Int32
	task := func(context.Context, a15Deps) error { ran.Add(1); return nil }
	idCtx := func(id string) context.Context { return context.WithValue(bg, a15CtxKey{}, id) }
	doErr := a15Go(func() error { return e.P.Do(idCtx("do"), task) })
	reports := make(chan [2]any, 1)
	if err := e.P.GoReport(idCtx("report"), task, func(o workerpool.Outcome, err error) { reports <- [2]any{o, err} }); err != nil {
		t.Fatal(err)
	}
	if err := e.P.Go(idCtx("go"), task); err != nil {
		t.Fatal(err)
	}
	f, err := workerpool.Submit(idCtx("submit"), e.P, func(context.Context, a15Deps) (int, error) { ran.Add(1); return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "4 queued", func() bool { return e.P.Stats().Queued == 4 })
	if err := e.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if !errors.Is(runningCause, workerpool.ErrClosed) {
		t.Errorf("running task's cause %v, want ErrClosed", runningCause)
	}
	if err := a15Recv(t, doErr, "Do"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v, want ErrClosed", err)
	}
	r := a15Recv(t, reports, "report")
	if r[0] != workerpool.NotRun || !errors.Is(r[1].(error), workerpool.ErrClosed) {
		t.Errorf("report %v, want NotRun ErrClosed", r)
	}
	wctx, cancel := context.WithTimeout(bg, a15Guard)
	defer cancel()
	if _, err := f.Wait(wctx); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Future.Wait = %v, want ErrClosed", err)
	}
	h := e.Handled()
	if len(h) != 1 || !errors.Is(h[0], workerpool.ErrClosed) {
		t.Errorf("ErrorHandler got %v, want the Go task's ErrClosed", h)
	}
	ids := map[any]bool{}
	for _, c := range e.Dropped() {
		ids[c.Value(a15CtxKey{})] = true
	}
	for _, id := range []string{"do", "report", "go", "submit"} {
		if !ids[id] {
			t.Errorf("OnDropped did not see the %q task (saw %v)", id, ids)
		}
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued tasks ran under Cancel", ran.Load())
	}
	if s := e.P.Stats(); s.Done != 1 || s.Dropped != 4 {
		t.Errorf("stats %+v, want Done 1 Dropped 4", s)
	}
	e.VerifyResources()
}

// ants' Release and pond's Stop while submitters block, fxpool's
// DropQueued: submitters blocked on a full queue return ErrClosed at once,
// the queued task is reported not run at once, and the running task is let
// finish with its context intact.
func TestAttack15PeerStopWhileSubmittersBlock(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(1))
	bg := context.Background()
	gate := a15NewGate(t)
	started := make(chan struct{})
	var ctxErrAtRelease error
	running, err := workerpool.Submit(bg, e.P, func(c context.Context, _ a15Deps) (int, error) {
		close(started)
		<-gate.C()
		ctxErrAtRelease = c.Err()
		return 5, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "running task")
	reports := make(chan workerpool.Outcome, 1)
	var ran atomic.Int32
	task := func(context.Context, a15Deps) error { ran.Add(1); return nil }
	if err := e.P.GoReport(bg, task, func(o workerpool.Outcome, _ error) { reports <- o }); err != nil {
		t.Fatal(err)
	}
	g, _ := e.P.Group(bg)
	blocked := []<-chan error{
		a15Go(func() error { return e.P.Go(bg, task) }),
		a15Go(func() error { return e.P.Do(bg, task) }),
		a15Go(func() error {
			_, err := workerpool.Submit(bg, e.P, func(context.Context, a15Deps) (int, error) { ran.Add(1); return 0, nil })
			return err
		}),
		a15Go(func() error { g.Go(task); return g.Wait() }),
	}
	for i, ch := range blocked {
		if !a15StillBlocked(ch) {
			t.Fatalf("submitter %d did not block on a full queue", i)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	stop := a15Go(func() error { return e.P.Stop(ctx, workerpool.DropQueued) })
	for i, ch := range blocked {
		if err := a15Recv(t, ch, fmt.Sprintf("blocked submitter %d", i)); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("blocked submitter %d: %v, want ErrClosed", i, err)
		}
	}
	if o := a15Recv(t, reports, "report of the queued task"); o != workerpool.NotRun {
		t.Errorf("queued task %v, want NotRun", o)
	}
	gate.Open()
	if err := a15Recv(t, stop, "Stop"); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if ctxErrAtRelease != nil {
		t.Errorf("DropQueued cancelled the running task early: %v", ctxErrAtRelease)
	}
	wctx, wcancel := context.WithTimeout(bg, a15Guard)
	defer wcancel()
	if v, err := running.Wait(wctx); v != 5 || err != nil {
		t.Errorf("running task: %v %v, want 5 <nil>", v, err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks ran that should not have", ran.Load())
	}
	if err := e.Stop(); err != nil {
		t.Errorf("app stop: %v", err)
	}
	if s := e.P.Stats(); s.Done != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v, want Done 1 Dropped 1", s)
	}
	e.VerifyResources()
}

// A stop without a deadline (pond's StopAndWait) runs every queued task.
func TestAttack15PeerStopWithoutDeadlineDrains(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(200))
	var ran atomic.Int32
	for range 200 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
			time.Sleep(100 * time.Microsecond)
			ran.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a15Recv(t, a15Go(func() error { return e.P.Stop(context.Background(), workerpool.Drain) }), "Stop"); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if ran.Load() != 200 {
		t.Errorf("%d of 200 queued tasks ran", ran.Load())
	}
	e.VerifyResources()
}

// A chain of tasks each submitting the next (pond's submit from a task)
// while the app stops: under Drain every accepted link runs; the chain ends
// with ErrClosed.
func TestAttack15PeerTasksSubmitTasksDuringStop(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	var accepted, ran atomic.Int32
	errs := make(chan error, 1)
	var link func(context.Context, a15Deps) error
	link = func(context.Context, a15Deps) error {
		ran.Add(1)
		if err := e.P.Go(context.Background(), link); err != nil {
			errs <- err
			return nil
		}
		accepted.Add(1)
		return nil
	}
	accepted.Add(1)
	if err := e.P.Go(context.Background(), link); err != nil {
		t.Fatal(err)
	}
	a15Eventually(t, "the chain runs", func() bool { return ran.Load() > 100 })
	if err := e.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := a15Recv(t, errs, "end of the chain"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("chain ended with %v, want ErrClosed", err)
	}
	if ran.Load() != accepted.Load() {
		t.Errorf("accepted %d links, ran %d", accepted.Load(), ran.Load())
	}
}

// conc's ResultPool and pond's result group: Map yields results in input
// order; a failed element yields its error and the loop goes on.
func TestAttack15PeerMapOrder(t *testing.T) {
	e := a15New(t, workerpool.Workers(4))
	in := func(yield func(int) bool) {
		for i := range 300 {
			if !yield(i) {
				return
			}
		}
	}
	i := 0
	for v, err := range workerpool.Map(context.Background(), e.P, in, func(_ context.Context, d a15Deps, x int) (int, error) {
		d.Res.enter()
		defer d.Res.leave()
		for range (x * 7919) % 13 {
			runtime.Gosched()
		}
		if x%7 == 3 {
			return -1, fmt.Errorf("element %d: %w", x, errA15)
		}
		return x * 2, nil
	}) {
		if i%7 == 3 {
			if !errors.Is(err, errA15) {
				t.Errorf("element %d: %v %v, want its error", i, v, err)
			}
		} else if err != nil || v != i*2 {
			t.Errorf("element %d: %v %v, want %d", i, v, err, i*2)
		}
		i++
	}
	if i != 300 {
		t.Errorf("Map yielded %d results, want 300", i)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}

// Map's early end: breaking out cancels what is queued and waits for what
// began; no f call runs after the loop, and in flight stays bounded.
func TestAttack15PeerMapEarlyBreak(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	var started, running atomic.Int32
	var drawn atomic.Int32
	in := func(yield func(int) bool) {
		for i := 0; ; i++ {
			drawn.Add(1)
			if !yield(i) {
				return
			}
		}
	}
	got := 0
	for v, err := range workerpool.Map(context.Background(), e.P, in, func(ctx context.Context, _ a15Deps, x int) (int, error) {
		started.Add(1)
		running.Add(1)
		defer running.Add(-1)
		time.Sleep(time.Millisecond)
		return x, nil
	}, workerpool.InFlight(4)) {
		if err != nil || v != got {
			t.Errorf("result %d: %v %v", got, v, err)
		}
		got++
		if got == 5 {
			break
		}
	}
	if r := running.Load(); r != 0 {
		t.Errorf("%d f calls still running after the loop ended", r)
	}
	after := started.Load()
	if after > 5+4 {
		t.Errorf("%d f calls started for 5 results with InFlight(4)", after)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if started.Load() != after {
		t.Errorf("f calls started after the loop ended: %d then %d", after, started.Load())
	}
}

// conc's context pool "canceled": Map whose context ends midway yields the
// error and ends, with nothing left running.
func TestAttack15PeerMapContextCancel(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Int32
	in := func(yield func(int) bool) {
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	}
	n, sawCancel := 0, false
	seq := workerpool.Map(ctx, e.P, in, func(c context.Context, _ a15Deps, x int) (int, error) {
		running.Add(1)
		defer running.Add(-1)
		time.Sleep(time.Millisecond)
		return x, c.Err()
	})
	done := a15Go(func() error {
		for _, err := range seq {
			n++
			if n == 3 {
				cancel()
			}
			if errors.Is(err, context.Canceled) {
				sawCancel = true
			}
			if n > 100000 {
				return errors.New("Map did not end after its context was cancelled")
			}
		}
		return nil
	})
	if err := a15Recv(t, done, "Map loop"); err != nil {
		t.Fatal(err)
	}
	if !sawCancel {
		t.Errorf("Map ended after %d results without yielding context.Canceled", n)
	}
	if r := running.Load(); r != 0 {
		t.Errorf("%d f calls running after the loop", r)
	}
}

// Python's maxtasksperchild, which ants and pond lack: a worker rebuilds
// after every n tasks; each generation closes exactly once.
func TestAttack15PeerMaxTasksPerWorker(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.MaxTasksPerWorker(3))
	for i := range 10 {
		var gen int
		var res *a15Res
		if err := e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error {
			gen, res = d.W.Generation, d.Res
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if gen != i/3 || res.W.Generation != i/3 {
			t.Errorf("task %d ran on generation %d (resource %d), want %d", i, gen, res.W.Generation, i/3)
		}
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Recycles != 3 || s.Restarts != 0 || s.Done != 10 {
		t.Errorf("stats %+v, want Recycles 3", s)
	}
	if n := len(e.Opened()); n != 4 {
		t.Errorf("%d generations opened, want 4", n)
	}
	e.VerifyResources()
}

// ants' purge of idle workers, fxpool's Elastic: the pool grows to max
// under load, never beyond, and shrinks to min once idle; it grows again.
func TestAttack15PeerElasticGrowShrink(t *testing.T) {
	e := a15New(t, workerpool.Elastic(0, 3, 20*time.Millisecond), workerpool.QueueSize(8))
	if s := e.P.Stats(); s.Workers != 0 {
		t.Errorf("elastic(0,3) opened %d workers at start", s.Workers)
	}
	if c := e.P.Capacity(); c.MaxWorkers != 3 {
		t.Errorf("capacity %+v, want MaxWorkers 3", c)
	}
	var barrier sync.WaitGroup
	barrier.Add(3)
	var active, peak atomic.Int32
	gate := a15NewGate(t)
	task := func(c context.Context, d a15Deps) error {
		d.Res.enter()
		defer d.Res.leave()
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return gate.Wait(c)
	}
	allThree := make(chan struct{})
	for i := range 3 {
		if err := e.P.Go(context.Background(), func(c context.Context, d a15Deps) error {
			barrier.Done()
			if i == 0 {
				barrier.Wait()
				close(allThree)
			}
			return task(c, d)
		}); err != nil {
			t.Fatal(err)
		}
	}
	a15Recv(t, allThree, "3 tasks at once on an elastic pool")
	for range 3 {
		if err := e.P.Go(context.Background(), task); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if p := peak.Load(); p > 3 {
		t.Errorf("peak %d tasks at once, max is 3", p)
	}
	gate.Open()
	a15Eventually(t, "the pool shrinks to 0 once idle", func() bool {
		s := e.P.Stats()
		return s.Workers == 0 && s.Closing == 0 && s.Queued == 0 && s.Busy == 0
	})
	if err := e.P.Do(context.Background(), a15Noop); err != nil {
		t.Errorf("Do after shrinking: %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak %d, want 3", p)
	}
	if s := e.P.Stats(); s.Done != 7 {
		t.Errorf("stats %+v, want Done 7", s)
	}
	e.VerifyResources()
}

// A task error wrapping resources.ErrBroken returns to its submitter and
// makes its worker rebuild (tunny's worker replaced, in fxpool's terms).
func TestAttack15PeerErrBrokenRebuilds(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	var first *a15Res
	err := e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error {
		first = d.Res
		return fmt.Errorf("conn reset: %w", resources.ErrBroken)
	})
	if !errors.Is(err, resources.ErrBroken) {
		t.Errorf("Do = %v, want the ErrBroken error", err)
	}
	var second *a15Res
	var gen int
	if err := e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error { second, gen = d.Res, d.W.Generation; return nil }); err != nil {
		t.Fatal(err)
	}
	if second == first || gen != 1 {
		t.Errorf("after ErrBroken: same resource %v, generation %d, want a new one, 1", second == first, gen)
	}
	if first.closed.Load() != 1 {
		t.Errorf("broken resource closed %d times before the stop", first.closed.Load())
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.P.Stats(); s.Restarts != 1 || s.Failed != 1 || s.Panics != 0 {
		t.Errorf("stats %+v, want Restarts 1 Failed 1", s)
	}
	e.VerifyResources()
}

// Bad input gets a clear error, never a hang or a panic of the pool.
func TestAttack15PeerNilInputs(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	bg := context.Background()
	//lint:ignore SA1012 testing the nil context
	if err := e.P.Go(nil, a15Noop); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
		t.Errorf("Go(nil ctx) = %v", err)
	}
	//lint:ignore SA1012 testing the nil context
	if err := e.P.Do(nil, a15Noop); !errors.Is(err, workerpool.ErrNilContext) { //nolint:staticcheck
		t.Errorf("Do(nil ctx) = %v", err)
	}
	if err := e.P.Go(bg, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Go(nil task) = %v", err)
	}
	if err := e.P.Do(bg, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Do(nil task) = %v", err)
	}
	if e.P.TryGo(nil) {
		t.Errorf("TryGo(nil) = true")
	}
	if _, err := workerpool.Submit[a15Deps, int](bg, e.P, nil); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Submit(nil) = %v", err)
	}
	if err := e.P.GoReport(bg, nil, func(workerpool.Outcome, error) {}); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("GoReport(nil) = %v", err)
	}
	g, _ := e.P.Group(bg)
	g.Go(nil)
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, workerpool.ErrNilTask) {
		t.Errorf("Group.Go(nil) then Wait = %v", err)
	}
	var errs []error
	for _, err := range workerpool.Map[a15Deps, int, int](bg, e.P, func(yield func(int) bool) { yield(1) }, nil) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], workerpool.ErrNilTask) {
		t.Errorf("Map(nil f) yielded %v", errs)
	}
	if err := e.P.Do(bg, a15Noop); err != nil {
		t.Errorf("Do after bad input: %v", err)
	}
	if s := e.P.Stats(); s.Done != 1 || s.Dropped != 0 {
		t.Errorf("stats %+v, want Done 1", s)
	}
}

// pond TestTaskGroupWaitingTasks and TestPoolMetrics while running: Busy and
// Queued describe a saturated pool; Capacity's defaults.
func TestAttack15PeerStatsWhileSaturated(t *testing.T) {
	e := a15New(t, workerpool.Workers(10))
	if c := e.P.Capacity(); c.Workers != 10 || c.MaxWorkers != 10 || c.Queue != 40 || c.InFlight() != 50 {
		t.Errorf("capacity %+v InFlight %d, want 10/10/40/50", c, c.InFlight())
	}
	g, _ := e.P.Group(context.Background())
	start, end := make(chan struct{}), a15NewGate(t)
	for range 20 {
		g.Go(func(c context.Context, _ a15Deps) error {
			select {
			case <-start:
			case <-c.Done():
			}
			return end.Wait(c)
		})
	}
	a15Eventually(t, "10 busy, 10 queued", func() bool { s := e.P.Stats(); return s.Busy == 10 && s.Queued == 10 })
	if s := e.P.Stats(); s.Workers != 10 || s.Done != 0 {
		t.Errorf("stats %+v", s)
	}
	close(start)
	end.Open()
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if s := e.P.Stats(); s.Done != 20 || s.Busy != 0 || s.Queued != 0 {
		t.Errorf("stats after Wait %+v, want Done 20 Busy 0 Queued 0", s)
	}
}

// A feeder's stop runs first, while the pool still takes its last tasks,
// and under Drain those run (the stop waits for queued tasks).
func TestAttack15PeerFeederLastTasksRun(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	var ran atomic.Int32
	var lastErr error
	if err := e.P.AddFeeder(func(ctx context.Context) error {
		for range 50 {
			if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error { ran.Add(1); return nil }); err != nil {
				lastErr = err
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if lastErr != nil {
		t.Errorf("the feeder's last tasks were refused: %v", lastErr)
	}
	if ran.Load() != 50 {
		t.Errorf("%d of the feeder's 50 last tasks ran", ran.Load())
	}
	if err := e.P.Go(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after stop = %v", err)
	}
}
