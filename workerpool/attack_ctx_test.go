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

type atkKey struct{}

var errCause = errors.New("atk: my cause")

// Values reach every kind of task; cancellation with cause reaches Do,
// Submit, GoReport, Group; Go's task is not cancelled by its ctx.
func TestAttackTaskContextValuesAndCause(t *testing.T) {
	p, _ := atkStart[W](t, "ctxpool", workerpool.Workers(2))

	check := func(name string, submit func(ctx context.Context, task func(context.Context, W) error) error, wantCancel bool) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), atkKey{}, name))
			defer cancel(nil)
			started := make(chan struct{})
			type res struct {
				val   any
				err   error
				cause error
			}
			got := make(chan res, 1)
			err := submit(ctx, func(tctx context.Context, _ W) error {
				close(started)
				v := tctx.Value(atkKey{})
				select {
				case <-tctx.Done():
					got <- res{v, tctx.Err(), context.Cause(tctx)}
				case <-time.After(300 * time.Millisecond):
					got <- res{v, nil, nil}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("submit: %v", err)
			}
			atkWait(t, "task start", 5*time.Second, started)
			cancel(errCause)
			var r res
			select {
			case r = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("task hung")
			}
			if r.val != name {
				t.Errorf("task ctx value = %v, want %q", r.val, name)
			}
			if wantCancel {
				if r.err == nil || !errors.Is(r.cause, errCause) {
					t.Errorf("task ctx: err=%v cause=%v, want cancelled with cause %v", r.err, r.cause, errCause)
				}
			} else if r.err != nil {
				t.Errorf("Go task ctx ended with %v (cause %v): must not end with submitter ctx", r.err, r.cause)
			}
		})
	}
	check("Go", func(ctx context.Context, task func(context.Context, W) error) error { return p.Go(ctx, task) }, false)
	check("Do", func(ctx context.Context, task func(context.Context, W) error) error {
		go p.Do(ctx, task)
		return nil
	}, true)
	check("Submit", func(ctx context.Context, task func(context.Context, W) error) error {
		_, err := workerpool.Submit(ctx, p, func(c context.Context, w W) (int, error) { return 0, task(c, w) })
		return err
	}, true)
	check("GoReport", func(ctx context.Context, task func(context.Context, W) error) error {
		return p.GoReport(ctx, task, func(workerpool.Outcome, error) {})
	}, true)
	var gwg sync.WaitGroup
	check("Group", func(ctx context.Context, task func(context.Context, W) error) error {
		g, _ := p.Group(ctx)
		g.Go(task)
		gwg.Add(1)
		go func() { defer gwg.Done(); g.Wait() }()
		return nil
	}, true)
	gwg.Wait()
}

// A Do/GoReport/Submit task whose ctx ended while queued must not run;
// Do returns ctx's error; GoReport reports NotRun with the cause.
func TestAttackQueuedTaskWithEndedCtxDoesNotRun(t *testing.T) {
	p, _ := atkStart[W](t, "queued", workerpool.Workers(1), workerpool.QueueSize(8))
	release := atkBlock(t, p, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	var ran atomic.Int32
	task := func(context.Context, W) error { ran.Add(1); return nil }

	doErr := make(chan error, 1)
	go func() { doErr <- p.Do(ctx, task) }()
	fut, err := workerpool.Submit(ctx, p, func(context.Context, W) (int, error) { ran.Add(1); return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	type rep struct {
		o   workerpool.Outcome
		err error
	}
	reps := make(chan rep, 4)
	if err := p.GoReport(ctx, task, func(o workerpool.Outcome, err error) { reps <- rep{o, err} }); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "3 queued", 5*time.Second, func() bool { return p.Stats().Queued >= 2 })
	cancel(errCause)
	release()
	select {
	case err := <-doErr:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errCause) {
			t.Errorf("Do = %v, want ctx error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do hung")
	}
	wctx, wc := context.WithTimeout(context.Background(), 5*time.Second)
	defer wc()
	if _, err := fut.Wait(wctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Future.Wait = %v, want the submit ctx's error", err)
	}
	select {
	case r := <-reps:
		if r.o != workerpool.NotRun || !errors.Is(r.err, errCause) {
			t.Errorf("GoReport = %v, %v; want NotRun with cause %v", r.o, r.err, errCause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GoReport never reported")
	}
	// Drain: a sync point through the pool.
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("%d tasks whose ctx ended while queued ran, want 0", n)
	}
	select {
	case r := <-reps:
		t.Errorf("GoReport reported twice: second %v %v", r.o, r.err)
	default:
	}
}

// runtime.Goexit in a task: every submitter is told ErrGoexit, the pool goes on.
func TestAttackGoexit(t *testing.T) {
	var handled sync.Mutex
	var handlerErrs []error
	p, _ := atkStart[W](t, "goexit", workerpool.Workers(1),
		workerpool.ErrorHandler(func(err error) { handled.Lock(); handlerErrs = append(handlerErrs, err); handled.Unlock() }))
	exit := func(context.Context, W) error { runtime.Goexit(); return nil }
	ctx := context.Background()

	done := make(chan error, 1)
	go func() { done <- p.Do(ctx, exit) }()
	select {
	case err := <-done:
		if !errors.Is(err, workerpool.ErrGoexit) {
			t.Errorf("Do(Goexit) = %v, want ErrGoexit", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do(Goexit) hung")
	}
	f, err := workerpool.Submit(ctx, p, func(context.Context, W) (int, error) { runtime.Goexit(); return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	wctx, wc := context.WithTimeout(ctx, 5*time.Second)
	defer wc()
	if _, err := f.Wait(wctx); !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Future.Wait(Goexit) = %v, want ErrGoexit", err)
	}
	var calls atomic.Int32
	rep := make(chan error, 2)
	if err := p.GoReport(ctx, exit, func(o workerpool.Outcome, err error) {
		calls.Add(1)
		if o != workerpool.Panicked {
			err = errors.Join(err, errors.New("outcome "+o.String()))
		}
		rep <- err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rep:
		if !errors.Is(err, workerpool.ErrGoexit) {
			t.Errorf("GoReport(Goexit) = %v, want Panicked ErrGoexit", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GoReport(Goexit) never reported")
	}
	g, _ := p.Group(ctx)
	g.Go(exit)
	gdone := make(chan error, 1)
	go func() { gdone <- g.Wait() }()
	select {
	case err := <-gdone:
		if !errors.Is(err, workerpool.ErrGoexit) {
			t.Errorf("Group.Wait(Goexit) = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Group.Wait(Goexit) hung")
	}
	if err := p.Go(ctx, exit); err != nil {
		t.Fatal(err)
	}
	// pool goes on
	if err := p.Do(ctx, func(context.Context, W) error { return nil }); err != nil {
		t.Errorf("Do after Goexits = %v", err)
	}
	atkPoll(t, "ErrorHandler got Go's Goexit", 5*time.Second, func() bool {
		handled.Lock()
		defer handled.Unlock()
		return len(handlerErrs) > 0
	})
	handled.Lock()
	if !errors.Is(handlerErrs[0], workerpool.ErrGoexit) {
		t.Errorf("ErrorHandler got %v, want ErrGoexit", handlerErrs[0])
	}
	handled.Unlock()
	if c := calls.Load(); c != 1 {
		t.Errorf("report called %d times", c)
	}
	s := p.Stats()
	if s.Panics != 5 || s.Failed != 5 || s.Restarts != 5 {
		t.Errorf("Stats = %+v, want Panics=5 Failed=5 Restarts=5", s)
	}
	if s.Workers != 1 {
		t.Errorf("Workers = %d after Goexits, want 1", s.Workers)
	}
}

// GoReport: each outcome exactly once, over many tasks with a Cancel stop.
func TestAttackGoReportExactlyOnce(t *testing.T) {
	p, _ := atkStart[W](t, "report", workerpool.Workers(2), workerpool.QueueSize(32))
	const n = 300
	var counts [n]atomic.Int32
	var outcomes [5]atomic.Int32
	ctx := context.Background()
	blockers := make(chan struct{})
	var blockersStarted atomic.Int32
	submit := func(i, kind int) {
		task := func(tctx context.Context, _ W) error {
			switch kind {
			case 0:
				return nil
			case 1:
				return errors.New("fail")
			case 2:
				panic("boom")
			case 3:
				runtime.Goexit()
			}
			blockersStarted.Add(1)
			close(blockers)
			<-tctx.Done() // kind 4: waits until stop
			return tctx.Err()
		}
		if kind == 4 {
			blockers = make(chan struct{})
		}
		want := []workerpool.Outcome{workerpool.Succeeded, workerpool.Failed, workerpool.Panicked, workerpool.Panicked, workerpool.Failed}[kind]
		err := p.GoReport(ctx, task, func(o workerpool.Outcome, err error) {
			counts[i].Add(1)
			outcomes[o].Add(1)
			if o != want && o != workerpool.NotRun {
				t.Errorf("task %d kind %d: outcome %v (%v), want %v", i, kind, o, err, want)
			}
			if o == workerpool.NotRun && !errors.Is(err, workerpool.ErrClosed) {
				t.Errorf("task %d NotRun with %v, want ErrClosed", i, err)
			}
			if o == workerpool.Succeeded && err != nil {
				t.Errorf("Succeeded with err %v", err)
			}
			if o == workerpool.Panicked && kind == 2 {
				var pe *workerpool.PanicError
				if !errors.As(err, &pe) {
					t.Errorf("Panicked err %v not PanicError", err)
				}
			}
			if o == workerpool.Panicked && kind == 3 && !errors.Is(err, workerpool.ErrGoexit) {
				t.Errorf("Goexit reported with %v", err)
			}
		})
		if err != nil {
			t.Fatalf("GoReport %d: %v", i, err)
		}
	}
	i := 0
	for ; i < 200; i++ {
		submit(i, i%4)
	}
	// two blockers hold both workers, then fill the queue and stop with Cancel
	for range 2 {
		submit(i, 4)
		atkWait(t, "blocker start", 5*time.Second, blockers)
		i++
	}
	for ; i < 200+2+32; i++ {
		submit(i, i%4)
	}
	accepted := i
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_ = p.Stop(sctx, workerpool.Cancel)
	for i := range accepted {
		if c := counts[i].Load(); c != 1 {
			t.Errorf("task %d reported %d times", i, c)
		}
	}
	t.Logf("outcomes: succ=%d fail=%d panic=%d notrun=%d", outcomes[1].Load(), outcomes[2].Load(), outcomes[3].Load(), outcomes[4].Load())
	if got := outcomes[workerpool.NotRun].Load(); got != 32 {
		t.Errorf("NotRun = %d, want the 32 queued", got)
	}
	s := p.Stats()
	if int(s.Done+s.Dropped) != accepted {
		t.Errorf("Stats Done+Dropped=%d+%d, accepted %d", s.Done, s.Dropped, accepted)
	}
	if int(s.Dropped) != int(outcomes[workerpool.NotRun].Load()) {
		t.Errorf("Stats.Dropped=%d, NotRun reports=%d", s.Dropped, outcomes[workerpool.NotRun].Load())
	}
	if err := p.GoReport(ctx, func(context.Context, W) error { return nil }, func(workerpool.Outcome, error) {
		t.Error("report called for a refused task")
	}); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("GoReport after stop = %v, want ErrClosed", err)
	}
}
