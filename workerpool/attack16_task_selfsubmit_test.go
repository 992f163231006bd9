package workerpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// A task blocked in Go on its own pool's full queue (its one worker is the
// task itself) when a Drain stop comes: "It blocks only while the queue is
// full, until there is room, the pool stops (ErrClosed) or ctx is done".
// The stop must free it, and then finish.
func TestA16tSelfSubmitBlockedInGoFreedByStop(t *testing.T) {
	var errs a16tErrs
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(1), workerpool.ErrorHandler(errs.handle))
	in := make(chan struct{})
	goErr := make(chan error, 1)
	var ranB, ranC atomic.Int32
	if err := p.Go(context.Background(), func(ctx context.Context, _ resources.Worker) error {
		close(in)
		// The queue holds B: no room until this task returns.
		goErr <- p.Go(ctx, func(context.Context, resources.Worker) error { ranC.Add(1); return nil })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a16tRecv(t, in, "A")
	if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { ranB.Add(1); return nil }); err != nil {
		// A may already be blocked trying to enqueue; B got here first
		// or A's C took the slot: either way the queue is full now.
		t.Fatalf("B: %v", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(context.Background(), workerpool.Drain) }()
	var gerr error
	select {
	case gerr = <-goErr:
	case <-time.After(a16tGuard):
		// Unstick it for goleak's sake with a bounded stop, then fail.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Stop(ctx, workerpool.Cancel)
		t.Fatal("a task blocked in Go on its own full pool was not freed by the stop (deadlock)")
	}
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	switch {
	case errors.Is(gerr, workerpool.ErrClosed):
		if ranC.Load() != 0 {
			t.Error("refused C ran")
		}
	case gerr == nil:
		if ranC.Load() != 1 {
			t.Error("accepted C did not run under Drain")
		}
	default:
		t.Errorf("Go = %v", gerr)
	}
	if ranB.Load() != 1 {
		t.Errorf("queued B ran %d times under Drain", ranB.Load())
	}
	if len(errs.all()) != 0 {
		t.Errorf("ErrorHandler: %v", errs.all())
	}
}

// Tasks that keep submitting children to their own pool while it stops:
// every child accepted runs (Drain, no deadline) or reaches the
// ErrorHandler as ErrClosed (DropQueued); none is lost.
func TestA16tSelfSubmittingTreeUnderStop(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			var errs a16tErrs
			p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(64), workerpool.ErrorHandler(errs.handle))
			var accepted, ran atomic.Int64
			var spawn func(depth int) func(context.Context, resources.Worker) error
			spawn = func(depth int) func(context.Context, resources.Worker) error {
				return func(ctx context.Context, _ resources.Worker) error {
					ran.Add(1)
					if depth >= 12 {
						return nil
					}
					for range 2 {
						if p.TryGo(spawn(depth + 1)) {
							accepted.Add(1)
						}
					}
					return nil
				}
			}
			for range 4 {
				if err := p.Go(context.Background(), spawn(0)); err != nil {
					t.Fatal(err)
				}
				accepted.Add(1)
			}
			a16tEventually(t, "the tree to grow", func() bool { return ran.Load() > 200 })
			ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
			defer cancel()
			if policy == workerpool.Drain {
				ctx = context.Background()
			}
			if err := p.Stop(ctx, policy); err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			closed := int64(errs.count(workerpool.ErrClosed))
			if ran.Load()+closed != accepted.Load() {
				t.Errorf("accepted %d, ran %d, ErrClosed %d: lost %d", accepted.Load(), ran.Load(), closed, accepted.Load()-ran.Load()-closed)
			}
			if int64(st.Done) != ran.Load() || int64(st.Dropped) != closed {
				t.Errorf("Stats Done=%d Dropped=%d, ran %d, dropped %d", st.Done, st.Dropped, ran.Load(), closed)
			}
			if policy == workerpool.Drain && closed != 0 {
				t.Errorf("Drain without deadline dropped %d", closed)
			}
		})
	}
}

// A group inside a task of its own one-worker pool: when the outer task's
// context ends, the inner group's context ends, and its queued task will
// never run. Does Wait return (the task "reported as not run"), as Map's
// loop does after the CHANGELOG's fix, or does the worker wait for itself?
func TestA16tNestedGroupOneWorkerOuterCancelled(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4))
	ctx, cancel := context.WithCancel(context.Background())
	var innerRan atomic.Bool
	waitErr := make(chan error, 1)
	inner := make(chan struct{})
	doErr := make(chan error, 1)
	go func() {
		doErr <- p.Do(ctx, func(tctx context.Context, _ resources.Worker) error {
			g, _ := p.Group(tctx)
			g.Go(func(context.Context, resources.Worker) error { innerRan.Store(true); return nil })
			close(inner)
			err := g.Wait()
			waitErr <- err
			return err
		})
	}()
	a16tRecv(t, inner, "inner group")
	cancel()
	a16tRecv(t, doErr, "Do")
	select {
	case err := <-waitErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("inner Wait = %v, want the context's cause", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("Group.Wait inside a task of its own one-worker pool never returned after the group's context ended: " +
			"the worker waits for a queued task only it could take")
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = p.Stop(sctx, workerpool.Cancel) // unsticks it: the queue is reported not run
		<-waitErr
	}
	if innerRan.Load() {
		t.Error("inner task ran")
	}
}

// Resize racing a stop: workers added and still opening when the stop
// begins close exactly once, and every accepted task is accounted.
func TestA16tResizeRacingStopExactlyOnce(t *testing.T) {
	type Res struct{}
	var mu sync.Mutex
	opened := map[[2]int]int{}
	closed := map[[2]int]int{}
	gate := make(chan struct{})
	var errs a16tErrs
	var p *workerpool.Pool[*Res]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Res]("a16t-rs", workerpool.Workers(1), workerpool.QueueSize(8), workerpool.ErrorHandler(errs.handle),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*Res, func(), error) {
				if w.ID > 0 {
					select {
					case <-gate:
					case <-ctx.Done():
						return nil, nil, ctx.Err()
					}
				}
				mu.Lock()
				opened[[2]int{w.ID, w.Generation}]++
				mu.Unlock()
				return &Res{}, func() {
					mu.Lock()
					closed[[2]int{w.ID, w.Generation}]++
					mu.Unlock()
				}, nil
			}))),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Stop(ctx)
	var ran atomic.Int32
	for range 6 {
		if err := p.Go(ctx, func(context.Context, *Res) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Resize(4); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx, workerpool.Drain) }()
	a16tEventually(t, "refusal", func() bool { return !p.Serving() })
	close(gate)
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Logf("stop: %v", err)
	}
	st := p.Stats()
	if int(st.Done+st.Dropped) != 6 || int(st.Done) != int(ran.Load()) {
		t.Errorf("Done %d Dropped %d ran %d, want 6 accounted", st.Done, st.Dropped, ran.Load())
	}
	if int(st.Dropped) != errs.count(workerpool.ErrClosed) {
		t.Errorf("Dropped %d, ErrorHandler ErrClosed %d", st.Dropped, errs.count(workerpool.ErrClosed))
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range opened {
		if n != 1 || closed[k] != 1 {
			t.Errorf("worker %v opened %d closed %d", k, n, closed[k])
		}
	}
	for k := range closed {
		if opened[k] == 0 {
			t.Errorf("worker %v closed without opening", k)
		}
	}
	if st.Workers != 0 || p.Capacity().Workers != 0 {
		t.Errorf("after stop: Stats.Workers %d Capacity.Workers %d", st.Workers, p.Capacity().Workers)
	}
}

// An elastic pool grown to its max takes exactly its queue's worth more
// with TryGo; Stats agree.
func TestA16tElasticFullExactly(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Elastic(1, 3, a16tGuard), workerpool.QueueSize(2))
	b := a16tNewBlocker()
	t.Cleanup(b.open)
	for range 3 {
		if err := p.Go(context.Background(), b.task); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		a16tRecv(t, b.started, "elastic pool to grow to 3")
	}
	took := 0
	for range 6 {
		if p.TryGo(func(context.Context, resources.Worker) error { return nil }) {
			took++
		}
	}
	if took != 2 {
		t.Errorf("TryGo took %d with 3 of 3 workers busy and QueueSize(2)", took)
	}
	st := p.Stats()
	if st.Workers != 3 || st.Busy != 3 || st.Queued != 2 {
		t.Errorf("Stats Workers=%d Busy=%d Queued=%d", st.Workers, st.Busy, st.Queued)
	}
	b.open()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Done != 5 {
		t.Errorf("Done %d", st.Done)
	}
}
