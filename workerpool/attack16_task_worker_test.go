package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// TryGo's task has context.Background's values (none), a live context,
// its error goes to the ErrorHandler; under Cancel its context ends with
// cause ErrClosed and a dropped one reaches OnDropped with Background.
func TestA16tTryGoContext(t *testing.T) {
	var errs a16tErrs
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(2),
		workerpool.ErrorHandler(errs.handle), dropped.option())
	in := make(chan struct{})
	seen := make(chan error, 2)
	errTry := errors.New("a16t: trygo")
	if !p.TryGo(func(ctx context.Context, _ resources.Worker) error {
		if ctx.Value(a16tKey{}) != nil {
			seen <- errors.New("TryGo task has a value")
		}
		close(in)
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return errTry
	}) {
		t.Fatal("TryGo refused")
	}
	a16tRecv(t, in, "TryGo task")
	if !p.TryGo(func(context.Context, resources.Worker) error { return nil }) {
		t.Fatal("TryGo refused a queued one")
	}
	if err := a16tStop(t, p, workerpool.Cancel); err != nil {
		t.Fatal(err)
	}
	if c := a16tRecv(t, seen, "cause"); !errors.Is(c, workerpool.ErrClosed) {
		t.Errorf("TryGo task cause %v", c)
	}
	if errs.count(errTry) != 1 || errs.count(workerpool.ErrClosed) != 1 || len(errs.all()) != 2 {
		t.Errorf("ErrorHandler: %v, want the task's error and one ErrClosed", errs.all())
	}
	if dropped.get(nil) != 1 {
		t.Errorf("OnDropped with Background: %d", dropped.get(nil))
	}
}

// runtime.Goexit in a task under LockOSThread: Do returns ErrGoexit, the
// worker goes on (rebuilt) and the next tasks run.
func TestA16tGoexitUnderLockOSThread(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.LockOSThread())
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	for i := range 3 {
		if err := p.Do(ctx, func(context.Context, resources.Worker) error { runtime.Goexit(); return nil }); !errors.Is(err, workerpool.ErrGoexit) {
			t.Fatalf("Goexit %d: Do = %v", i, err)
		}
		var gen int
		if err := p.Do(ctx, func(_ context.Context, w resources.Worker) error { gen = w.Generation; return nil }); err != nil {
			t.Fatalf("after Goexit %d: %v", i, err)
		}
		if gen != i+1 {
			t.Errorf("after Goexit %d: generation %d", i, gen)
		}
	}
	if st := p.Stats(); st.Panics != 3 || st.Restarts != 3 {
		t.Errorf("Stats Panics=%d Restarts=%d", st.Panics, st.Restarts)
	}
}

// MaxTasksPerWorker: the rebuild follows the n-th task before the next;
// it counts as a recycle, not a restart.
func TestA16tMaxTasksPerWorkerGenerations(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.MaxTasksPerWorker(2))
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	var gens []int
	for range 7 {
		if err := p.Do(ctx, func(_ context.Context, w resources.Worker) error { gens = append(gens, w.Generation); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := []int{0, 0, 1, 1, 2, 2, 3}
	for i := range want {
		if gens[i] != want[i] {
			t.Fatalf("generations %v, want %v", gens, want)
		}
	}
	a16tEventually(t, "recycles counted", func() bool { return p.Stats().Recycles == 3 })
	if st := p.Stats(); st.Restarts != 0 {
		t.Errorf("Restarts %d", st.Restarts)
	}
}

// Elastic(0, 1) whose only worker retires while tasks keep coming: every
// Do returns its task's result; none is lost between the retirement and
// the growth.
func TestA16tElasticRetireRace(t *testing.T) {
	clock := fxpooltest.NewClock()
	p, _ := a16tStart(t, workerpool.Elastic(0, 1, time.Millisecond), workerpool.QueueSize(2), clock.Option())
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	var ran atomic.Int32
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-stop:
				return
			default:
				clock.Add(time.Millisecond)
				runtime.Gosched()
			}
		}
	}()
	for i := range 300 {
		if err := p.Do(ctx, func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
			close(stop)
			<-ticked
			t.Fatalf("Do %d: %v", i, err)
		}
	}
	close(stop)
	<-ticked
	if ran.Load() != 300 {
		t.Errorf("ran %d", ran.Load())
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Done != 300 || st.Workers != 0 {
		t.Errorf("Stats Done=%d Workers=%d", st.Done, st.Workers)
	}
}

// A task that returns ErrBroken (or panics) while a Drain stop waits for
// the queue: the worker rebuilds and the queued tasks still run, with a
// deadline far off or none; every generation closes exactly once.
func TestA16tRebuildDuringDrainStillRunsQueue(t *testing.T) {
	type Res struct{ w resources.Worker }
	for _, tc := range []struct {
		name     string
		deadline bool
		fail     func() error
	}{
		{"broken-nodeadline", false, func() error { return fmt.Errorf("x: %w", resources.ErrBroken) }},
		{"broken-deadline", true, func() error { return fmt.Errorf("x: %w", resources.ErrBroken) }},
		{"panic-nodeadline", false, func() error { panic("a16t") }},
		{"goexit-deadline", true, func() error { runtime.Goexit(); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			opened := map[int]int{}
			closed := map[int]int{}
			var errs a16tErrs
			var dropped a16tDropped
			dropped.ids = map[any]int{}
			var p *workerpool.Pool[*Res]
			app := fx.New(fx.NopLogger,
				workerpool.Provide[*Res]("a16t-rd", workerpool.Workers(1), workerpool.QueueSize(4), workerpool.ErrorHandler(errs.handle),
					workerpool.OnDropped[*Res](func(context.Context, func(context.Context, *Res) error) { dropped.n.Add(1) }),
					workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Res, func(), error) {
						mu.Lock()
						opened[w.Generation]++
						mu.Unlock()
						return &Res{w}, func() { mu.Lock(); closed[w.Generation]++; mu.Unlock() }, nil
					}))),
				fx.Populate(&p))
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			sctx, scancel := context.WithTimeout(context.Background(), a16tGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			defer app.Stop(sctx)
			in := make(chan struct{})
			release := make(chan struct{})
			if err := p.Go(sctx, func(context.Context, *Res) error {
				close(in)
				<-release
				return tc.fail()
			}); err != nil {
				t.Fatal(err)
			}
			a16tRecv(t, in, "running")
			gens := make(chan int, 3)
			for range 3 {
				if err := p.Go(sctx, func(_ context.Context, r *Res) error { gens <- r.w.Generation; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			stopCtx := context.Background()
			if tc.deadline {
				stopCtx = sctx
			}
			stopped := make(chan error, 1)
			go func() { stopped <- p.Stop(stopCtx, workerpool.Drain) }()
			a16tEventually(t, "refusal", func() bool { return !p.Serving() })
			close(release)
			if err := a16tRecv(t, stopped, "stop"); err != nil {
				t.Fatal(err)
			}
			if len(gens) != 3 || dropped.n.Load() != 0 {
				t.Errorf("Drain after a rebuild: %d of 3 queued tasks ran, %d dropped", len(gens), dropped.n.Load())
			}
			for range len(gens) {
				if g := <-gens; g != 1 {
					t.Errorf("queued task ran on generation %d, want 1 (rebuilt)", g)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for g, n := range opened {
				if n != 1 || closed[g] != 1 {
					t.Errorf("generation %d opened %d closed %d", g, n, closed[g])
				}
			}
		})
	}
}
