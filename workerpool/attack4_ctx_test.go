package workerpool_test

// Round 4 of adversarial tests: the task's context. A worker now keeps the
// context of a task bound to its submitter's context for the next task of
// the same one; these tests look for a value, a cancellation or a cause
// leaking from one submitter's task to another's, or from one task to the
// next of the same submitter.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// a4Submit runs task through one of the APIs with a submitter, and waits
// for it; it returns what the submitter was told.
func a4Submit(p *workerpool.Pool[W], api int, ctx context.Context, task func(context.Context, W) error) error {
	switch api % 5 {
	case 0:
		return p.Do(ctx, task)
	case 1:
		f, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) { return 0, task(ctx, w) })
		if err != nil {
			return err
		}
		_, err = f.Wait(context.Background())
		return err
	case 2:
		ch := make(chan error, 1)
		if err := p.GoReport(ctx, task, func(_ workerpool.Outcome, err error) { ch <- err }); err != nil {
			return err
		}
		return <-ch
	case 3:
		g, _ := p.Group(ctx)
		g.Go(task)
		return g.Wait()
	default:
		var last error
		for _, err := range workerpool.Map(ctx, p, slices.Values([]int{0}), func(ctx context.Context, w W, _ int) (int, error) {
			return 0, task(ctx, w)
		}) {
			last = err
		}
		return last
	}
}

var a4APIs = []string{"Do", "Submit", "GoReport", "Group", "Map"}

// TestAttack4ValuesNeverLeakBetweenSubmitters: "A task's context carries the
// values of the context it was submitted with". Contexts that share one
// cancellation (one Done channel) but carry different values, contexts
// without cancellation (Background, WithoutCancel) with different values,
// and a cancellable context between them, submitted in turn to a single
// worker: each task sees its own submitter's value, and only it, while it
// runs, and a task that keeps its context after returning still sees its
// own value later.
func TestAttack4ValuesNeverLeakBetweenSubmitters(t *testing.T) {
	p, _ := atkStart[W](t, "a4leak", workerpool.Workers(1), workerpool.ErrorHandler(func(error) {}))
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	type kept struct {
		ctx  context.Context
		want string
	}
	var keptMu sync.Mutex
	var keeps []kept
	var bad atomic.Int64
	mk := func(i int) (context.Context, string) {
		v := fmt.Sprintf("submitter-%d", i)
		switch i % 5 {
		case 0: // shares parent's Done channel with every other case 0
			return context.WithValue(parent, a4Key{}, v), v
		case 1: // no Done channel at all
			return context.WithValue(context.Background(), a4Key{}, v), v
		case 2: // WithoutCancel of a cancellable one
			c, cancel := context.WithCancel(context.WithValue(context.Background(), a4Key{}, v))
			cancel() // ended: WithoutCancel must not see it
			return context.WithoutCancel(c), v
		case 3: // WithoutCancel of parent, value on top
			return context.WithValue(context.WithoutCancel(parent), a4Key{}, v), v
		default: // a value under a second value of another key
			type other struct{}
			return context.WithValue(context.WithValue(parent, a4Key{}, v), other{}, i), v
		}
	}
	for i := range 400 {
		ctx, want := mk(i)
		task := func(tctx context.Context, _ W) error {
			if got := tctx.Value(a4Key{}); got != want {
				bad.Add(1)
				return fmt.Errorf("task of %s sees value %v", want, got)
			}
			if tctx.Err() != nil {
				bad.Add(1)
				return fmt.Errorf("task of %s runs with an ended context: %v", want, context.Cause(tctx))
			}
			keptMu.Lock()
			keeps = append(keeps, kept{tctx, want})
			keptMu.Unlock()
			return nil
		}
		var err error
		if i%6 == 5 {
			done := make(chan error, 1)
			if err := p.Go(ctx, func(c context.Context, w W) error { err := task(c, w); done <- err; return err }); err != nil {
				t.Fatal(err)
			}
			within(t, "Go task", func() { err = <-done })
		} else {
			within(t, a4APIs[i%5], func() { err = a4Submit(p, i, ctx, task) })
		}
		if err != nil {
			t.Errorf("task %d (%s): %v", i, a4APIs[i%5], err)
		}
	}
	if bad.Load() > 0 {
		t.Errorf("%d tasks saw another submitter's value or an ended context", bad.Load())
	}
	// Later, every kept context still carries its own submitter's value.
	keptMu.Lock()
	defer keptMu.Unlock()
	n := 0
	for _, k := range keeps {
		if got := k.ctx.Value(a4Key{}); got != k.want {
			n++
			if n < 5 {
				t.Errorf("a context kept by the task of %s now carries %v", k.want, got)
			}
		}
	}
	if n > 0 {
		t.Errorf("%d of %d kept task contexts changed their value after the task returned", n, len(keeps))
	}
}

// TestAttack4KeptContextEndsOnlyWithItsOwnSubmitter: a task that keeps its
// context in a goroutine after returning must not see it end because
// another submitter's context ended, and its value never changes; when its
// own submitter's context ends, so does it (with that cause), or it had
// already ended when the task returned.
func TestAttack4KeptContextEndsOnlyWithItsOwnSubmitter(t *testing.T) {
	p, _ := atkStart[W](t, "a4kept", workerpool.Workers(1))
	whyA, whyB := errors.New("A left"), errors.New("B left")
	ctxA, cancelA := context.WithCancelCause(context.WithValue(context.Background(), a4Key{}, "A"))
	ctxB, cancelB := context.WithCancelCause(context.WithValue(context.Background(), a4Key{}, "B"))
	defer cancelA(nil)
	defer cancelB(nil)
	for api := range a4APIs {
		var keptA, keptA2, keptB context.Context
		keep := func(dst *context.Context) func(context.Context, W) error {
			return func(ctx context.Context, _ W) error { *dst = ctx; return nil }
		}
		// A, A again (the worker may reuse A's bound context), then B.
		for _, step := range []struct {
			ctx context.Context
			dst *context.Context
		}{{ctxA, &keptA}, {ctxA, &keptA2}, {ctxB, &keptB}} {
			var err error
			within(t, a4APIs[api], func() { err = a4Submit(p, api, step.ctx, keep(step.dst)) })
			if err != nil {
				t.Fatalf("%s: %v", a4APIs[api], err)
			}
		}
		if api == len(a4APIs)-1 {
			cancelB(whyB) // B ends: A's contexts must not
		}
		for name, c := range map[string]context.Context{"A": keptA, "A again": keptA2} {
			if c.Value(a4Key{}) != "A" {
				t.Errorf("%s: kept context of %s carries %v", a4APIs[api], name, c.Value(a4Key{}))
			}
			if errors.Is(context.Cause(c), whyB) {
				t.Errorf("%s: kept context of %s ended with B's cause", a4APIs[api], name)
			}
		}
		if keptB.Value(a4Key{}) != "B" {
			t.Errorf("%s: kept context of B carries %v", a4APIs[api], keptB.Value(a4Key{}))
		}
		if api == len(a4APIs)-1 {
			// B's kept context has ended, with B's cause (or it ended when
			// its task returned).
			atkWait(t, "B's kept context ends", a4Hang, keptB.Done())
			if c := context.Cause(keptB); errors.Is(c, whyA) {
				t.Errorf("B's kept context ended with A's cause %v", c)
			}
			cancelA(whyA)
			for _, c := range []context.Context{keptA, keptA2} {
				atkWait(t, "A's kept context ends", a4Hang, c.Done())
				if errors.Is(context.Cause(c), whyB) {
					t.Errorf("A's kept context ended with B's cause")
				}
			}
		}
	}
}

// TestAttack4SharedContextCancelledMidStream: many tasks share one
// submitter context; a task cancels it (with a cause) while the rest are
// queued. On one worker, every task after it was taken after the
// cancellation and must not run; each submitter is told the cause; a task
// running when it ends sees its context end with that cause; the tasks
// that did not run count in Dropped, and Done + Dropped is all of them.
func TestAttack4SharedContextCancelledMidStream(t *testing.T) {
	for api := range a4APIs[:3] {
		t.Run(a4APIs[api], func(t *testing.T) {
			p, app := atkStart[W](t, "a4mid"+a4APIs[api], workerpool.Workers(1), workerpool.QueueSize(256))
			why := errors.New("request gone")
			ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), a4Key{}, "shared"))
			defer cancel(nil)
			const n, k = 120, 40
			var ran, after atomic.Int64
			var cancelled atomic.Bool
			sawCause := make(chan error, 1)
			task := func(i int) func(context.Context, W) error {
				return func(tctx context.Context, _ W) error {
					ran.Add(1)
					if cancelled.Load() {
						after.Add(1)
					}
					if tctx.Value(a4Key{}) != "shared" {
						t.Errorf("task %d: value %v", i, tctx.Value(a4Key{}))
					}
					if i == k {
						cancelled.Store(true)
						cancel(why)
						select {
						case <-tctx.Done():
							sawCause <- context.Cause(tctx)
						case <-time.After(a4Hang):
							sawCause <- errors.New("hang: the running task's context never ended")
						}
					}
					return nil
				}
			}
			release := atkBlock(t, p, 1)
			told := make([]chan error, n)
			for i := range n {
				told[i] = make(chan error, 1)
				switch api {
				case 0:
					go func() { told[i] <- p.Do(ctx, task(i)) }()
				case 1:
					f, err := workerpool.Submit(ctx, p, func(c context.Context, w W) (int, error) { return 0, task(i)(c, w) })
					if err != nil {
						t.Fatal(err)
					}
					go func() { _, err := f.Wait(context.Background()); told[i] <- err }()
				case 2:
					if err := p.GoReport(ctx, task(i), func(_ workerpool.Outcome, err error) { told[i] <- err }); err != nil {
						t.Fatal(err)
					}
				}
				if api == 0 {
					// Do's goroutines submit in any order: wait for each.
					atkPoll(t, "queued", a4Hang, func() bool { return p.Stats().Queued == i+1 })
				}
			}
			release()
			if err := <-sawCause; !errors.Is(err, why) {
				t.Errorf("the running task's context ended with %v, want the submitter's cause", err)
			}
			for i := range n {
				var err error
				within(t, "submitter told", func() { err = <-told[i] })
				if api == 0 && i > k {
					// Do may return ctx's error or its cause
					if !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
						t.Errorf("task %d after the cancel: Do = %v", i, err)
					}
				} else if i > k && !errors.Is(err, why) {
					t.Errorf("task %d after the cancel: told %v, want the cause", i, err)
				}
			}
			if after.Load() != 0 {
				t.Errorf("%d tasks ran after their submitter's context ended (taken by the only worker after it)", after.Load())
			}
			if err := app.Stop(a3Ctx(t, a4Hang)); err != nil {
				t.Fatal(err)
			}
			s := p.Stats()
			if s.Done != uint64(ran.Load())+1 || s.Done+s.Dropped != n+1 {
				t.Errorf("stats %+v: want Done %d (ran + the blocker), Done + Dropped %d", s, ran.Load()+1, n+1)
			}
		})
	}
}

// TestAttack4StopCancelWhileSharedContextTasksRun: the pool's Stop(Cancel)
// while tasks of one shared submitter context run on every worker ends each
// one's context with cause ErrClosed (not the submitter's, which has not
// ended), and the submitter's context stays alive; the tasks still queued
// are told ErrClosed.
func TestAttack4StopCancelWhileSharedContextTasksRun(t *testing.T) {
	const workers = 3
	p, _ := atkStart[W](t, "a4stopcancel", workerpool.Workers(workers), workerpool.QueueSize(16))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), a4Key{}, "shared"))
	defer cancel()
	started := make(chan struct{}, workers)
	causes := make(chan error, workers)
	task := func(tctx context.Context, _ W) error {
		started <- struct{}{}
		select {
		case <-tctx.Done():
			causes <- context.Cause(tctx)
		case <-time.After(a4Hang):
			causes <- errors.New("hang")
		}
		return tctx.Err()
	}
	told := make(chan error, workers+10)
	for range workers + 10 {
		go func() { told <- p.Do(ctx, task) }()
	}
	for range workers {
		atkWait(t, "tasks start", a4Hang, chanOf(started))
	}
	atkPoll(t, "the rest queued", a4Hang, func() bool { return p.Stats().Queued == 10 })
	within(t, "Stop(Cancel)", func() {
		if err := p.Stop(a3Ctx(t, a4Hang), workerpool.Cancel); err != nil {
			t.Errorf("Stop = %v", err)
		}
	})
	for range workers {
		if c := <-causes; !errors.Is(c, workerpool.ErrClosed) {
			t.Errorf("a running task's context ended with %v, want ErrClosed", c)
		}
	}
	closed := 0
	for range workers + 10 {
		if err := <-told; errors.Is(err, workerpool.ErrClosed) {
			closed++
		}
	}
	if closed < 10 {
		t.Errorf("%d submitters told ErrClosed, want at least the 10 queued", closed)
	}
	if ctx.Err() != nil {
		t.Error("the submitter's context ended")
	}
	if s := p.Stats(); s.Done != workers || s.Dropped != 10 {
		t.Errorf("stats %+v, want Done %d, Dropped 10", s, workers)
	}
}

// TestAttack4DeadlineReachesTheTask: a submitter's deadline ends its task's
// context, with DeadlineExceeded, on every API with a submitter; the next
// task of the same worker, from a context without deadline, runs with a
// live context.
func TestAttack4DeadlineReachesTheTask(t *testing.T) {
	p, _ := atkStart[W](t, "a4deadline", workerpool.Workers(1))
	for api := range a4APIs {
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), a4Key{}, "dl"), 50*time.Millisecond)
		causes := make(chan error, 1)
		err := a4Submit(p, api, ctx, func(tctx context.Context, _ W) error {
			if _, ok := tctx.Deadline(); !ok {
				t.Errorf("%s: the task's context has no deadline", a4APIs[api])
			}
			select {
			case <-tctx.Done():
				causes <- context.Cause(tctx)
			case <-time.After(a4Hang):
				causes <- errors.New("hang")
			}
			return nil
		})
		cancel()
		// Do and Map return when ctx ends, without waiting for the task.
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v", a4APIs[api], err)
		}
		if cause := <-causes; !errors.Is(cause, context.DeadlineExceeded) {
			t.Errorf("%s: task's context ended with %v, want DeadlineExceeded", a4APIs[api], cause)
		}
		err = a4Submit(p, api, context.Background(), func(tctx context.Context, _ W) error {
			if tctx.Err() != nil || tctx.Value(a4Key{}) != nil {
				return fmt.Errorf("next task: Err %v, value %v", tctx.Err(), tctx.Value(a4Key{}))
			}
			if _, ok := tctx.Deadline(); ok {
				return errors.New("next task has the previous one's deadline")
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", a4APIs[api], err)
		}
	}
}

// TestAttack4GroupFirstErrorCancelsTheRest: a group's first failure ends
// the context of the others with that error as cause, the group's tasks
// queued behind it do not run, and a second group on the same workers,
// from the same parent context, starts with live contexts.
func TestAttack4GroupFirstErrorCancelsTheRest(t *testing.T) {
	p, _ := atkStart[W](t, "a4group", workerpool.Workers(2), workerpool.QueueSize(32))
	parent := context.WithValue(context.Background(), a4Key{}, "req")
	first := errors.New("first failure")
	for round := range 20 {
		g, gctx := p.Group(parent)
		var ran atomic.Int64
		blockerUp := make(chan struct{})
		causeSeen := make(chan error, 1)
		g.Go(func(tctx context.Context, _ W) error { // blocks until cancelled
			close(blockerUp)
			select {
			case <-tctx.Done():
				causeSeen <- context.Cause(tctx)
			case <-time.After(a4Hang):
				causeSeen <- errors.New("hang")
			}
			return nil
		})
		<-blockerUp
		failGate := make(chan struct{})
		g.Go(func(context.Context, W) error { <-failGate; return first })
		for range 10 {
			g.Go(func(tctx context.Context, _ W) error {
				ran.Add(1)
				if tctx.Value(a4Key{}) != "req" {
					t.Errorf("group task value %v", tctx.Value(a4Key{}))
				}
				return nil
			})
		}
		close(failGate)
		var err error
		within(t, "Wait", func() { err = g.Wait() })
		if !errors.Is(err, first) {
			t.Errorf("round %d: Wait = %v, want the first failure", round, err)
		}
		if c := <-causeSeen; !errors.Is(c, first) {
			t.Errorf("round %d: the blocked task's context ended with %v, want the first failure", round, c)
		}
		if !errors.Is(context.Cause(gctx), first) {
			t.Errorf("round %d: group context cause %v", round, context.Cause(gctx))
		}
		if ran.Load() != 0 {
			t.Errorf("round %d: %d tasks queued behind the failure ran", round, ran.Load())
		}
		// The same parent again: nothing of the failed group leaks in.
		if err := p.Do(parent, func(tctx context.Context, _ W) error { return context.Cause(tctx) }); err != nil {
			t.Errorf("round %d: a Do after the failed group runs with an ended context: %v", round, err)
		}
	}
}

// TestAttack4EndedLoopOrGroupDoesNotEndTheNext: a Map loop that ends early
// ends its own tasks' contexts, and a failed group its own; the next Map
// and the next group from the same parent context, on the same worker,
// run with live contexts carrying the parent's value.
func TestAttack4EndedLoopOrGroupDoesNotEndTheNext(t *testing.T) {
	p, _ := atkStart[W](t, "a4next", workerpool.Workers(1), workerpool.QueueSize(8))
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), a4Key{}, "parent"))
	defer cancel()
	live := func(tctx context.Context) error {
		if tctx.Err() != nil {
			return fmt.Errorf("ended context: %v", context.Cause(tctx))
		}
		if tctx.Value(a4Key{}) != "parent" {
			return fmt.Errorf("value %v", tctx.Value(a4Key{}))
		}
		return nil
	}
	for round := range 30 {
		// A Map broken off after its first result.
		for range workerpool.Map(parent, p, slices.Values([]int{1, 2, 3, 4}), func(ctx context.Context, _ W, _ int) (int, error) {
			return 0, nil
		}, workerpool.InFlight(4)) {
			break
		}
		for _, err := range workerpool.Map(parent, p, slices.Values([]int{1, 2, 3}), func(ctx context.Context, _ W, _ int) (int, error) {
			return 0, live(ctx)
		}) {
			if err != nil {
				t.Fatalf("round %d: the next Map's task: %v", round, err)
			}
		}
		// A group that failed, then one that must not.
		g, _ := p.Group(parent)
		g.Go(func(context.Context, W) error { return errors.New("first") })
		_ = g.Wait()
		g2, _ := p.Group(parent)
		for range 3 {
			g2.Go(func(ctx context.Context, _ W) error { return live(ctx) })
		}
		if err := g2.Wait(); err != nil {
			t.Fatalf("round %d: the next group's task: %v", round, err)
		}
		if err := p.Do(parent, func(ctx context.Context, _ W) error { return live(ctx) }); err != nil {
			t.Fatalf("round %d: Do after them: %v", round, err)
		}
	}
}
