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

// With every worker busy, TryGo takes exactly QueueSize tasks, Stats says
// so, and Capacity is what the options said.
func TestA16tTryGoTakesExactlyQueueSize(t *testing.T) {
	for _, tc := range []struct{ workers, queue int }{{1, 1}, {1, 3}, {2, 5}, {3, 7}, {2, 0}} {
		t.Run(fmt.Sprintf("w%dq%d", tc.workers, tc.queue), func(t *testing.T) {
			p, _ := a16tStart(t, workerpool.Workers(tc.workers), workerpool.QueueSize(tc.queue))
			c := p.Capacity()
			if c.Workers != tc.workers || c.MaxWorkers != tc.workers || c.Queue != tc.queue || c.InFlight() != tc.workers+tc.queue {
				t.Errorf("Capacity %+v InFlight %d", c, c.InFlight())
			}
			b := a16tOccupy(t, p, tc.workers)
			var ran atomic.Int32
			took := 0
			for range tc.queue + 10 {
				if p.TryGo(func(context.Context, resources.Worker) error { ran.Add(1); return nil }) {
					took++
				}
			}
			if took != tc.queue {
				t.Errorf("TryGo took %d tasks with %d busy workers and QueueSize(%d)", took, tc.workers, tc.queue)
			}
			st := p.Stats()
			if st.Queued != tc.queue || st.Busy != tc.workers || st.Workers != tc.workers {
				t.Errorf("Stats Queued=%d Busy=%d Workers=%d, want %d %d %d", st.Queued, st.Busy, st.Workers, tc.queue, tc.workers, tc.workers)
			}
			// Go must block now: it returns its ctx's error, and its task is
			// not accepted.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := p.Go(ctx, func(context.Context, resources.Worker) error { ran.Add(100); return nil }); !errors.Is(err, context.Canceled) {
				t.Errorf("Go on a full pool with an ended ctx = %v", err)
			}
			b.open()
			if err := a16tStop(t, p, workerpool.Drain); err != nil {
				t.Fatal(err)
			}
			if int(ran.Load()) != took {
				t.Errorf("ran %d, want %d", ran.Load(), took)
			}
			if st := p.Stats(); int(st.Done) != tc.workers+took || st.Dropped != 0 {
				t.Errorf("Done %d Dropped %d", st.Done, st.Dropped)
			}
		})
	}
}

// QueueSize(0) is a hand-off: an idle worker takes a TryGo, a busy pool
// refuses it, nothing is ever queued, and a Go that waits for a worker
// returns its ctx's error without its task being accepted.
func TestA16tHandOffQueue(t *testing.T) {
	var errs a16tErrs
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(0), workerpool.ErrorHandler(errs.handle))
	b := a16tNewBlocker()
	if !p.TryGo(b.task) {
		t.Fatal("TryGo refused with two idle workers")
	}
	a16tRecv(t, b.started, "first")
	if !p.TryGo(b.task) {
		t.Fatal("TryGo refused with one idle worker")
	}
	a16tRecv(t, b.started, "second")
	var ran atomic.Int32
	if p.TryGo(func(context.Context, resources.Worker) error { ran.Add(1); return nil }) {
		t.Error("TryGo took a task with both workers busy and no queue")
	}
	ctx, cancel := context.WithCancel(context.Background())
	goErr := make(chan error, 1)
	go func() { goErr <- p.Go(ctx, func(context.Context, resources.Worker) error { ran.Add(10); return nil }) }()
	// Whether or not Go has begun waiting, nothing may be queued.
	if q := p.Stats().Queued; q != 0 {
		t.Errorf("Queued = %d with QueueSize(0)", q)
	}
	cancel()
	if err := a16tRecv(t, goErr, "Go waiting for a worker"); !errors.Is(err, context.Canceled) {
		t.Errorf("Go = %v, want context.Canceled", err)
	}
	b.open()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Errorf("refused tasks ran: %d", ran.Load())
	}
	if st := p.Stats(); st.Done != 2 || st.Dropped != 0 {
		t.Errorf("Stats Done=%d Dropped=%d, want 2 and 0", st.Done, st.Dropped)
	}
}

// Resize: Capacity follows at once, added workers run tasks side by side,
// removed ones close their resources exactly once, and the queue's size
// does not change.
func TestA16tResizeUpDown(t *testing.T) {
	var mu sync.Mutex
	opened := map[[2]int]int{}
	closed := map[[2]int]int{}
	type Res struct{ w resources.Worker }
	var p *workerpool.Pool[*Res]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Res]("a16t-resize", workerpool.Workers(1), workerpool.QueueSize(3),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Res, func(), error) {
				mu.Lock()
				opened[[2]int{w.ID, w.Generation}]++
				mu.Unlock()
				return &Res{w}, func() {
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

	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	if c := p.Capacity(); c.Workers != 3 || c.MaxWorkers != 3 || c.Queue != 3 {
		t.Errorf("Capacity after Resize(3) = %+v", c)
	}
	// Three tasks that each wait for all three to run: only three workers
	// side by side can finish them.
	var arrived sync.WaitGroup
	arrived.Add(3)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	ids := make(chan int, 3)
	g, _ := p.Group(ctx)
	for range 3 {
		g.Go(func(_ context.Context, r *Res) error {
			ids <- r.w.ID
			arrived.Done()
			<-all
			return nil
		})
	}
	a16tRecv(t, all, "three tasks side by side after Resize(3)")
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 3 {
		seen[<-ids] = true
	}
	if len(seen) != 3 {
		t.Errorf("the three tasks ran on workers %v", seen)
	}
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	if c := p.Capacity(); c.Workers != 1 || c.Queue != 3 {
		t.Errorf("Capacity after Resize(1) = %+v", c)
	}
	a16tEventually(t, "two workers to retire", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range closed {
			n += c
		}
		return n == 2 && p.Stats().Workers == 1
	})
	if err := p.Do(ctx, func(context.Context, *Res) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{0, -1} {
		if err := p.Resize(bad); err == nil {
			t.Errorf("Resize(%d) = nil", bad)
		}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range opened {
		if n != 1 || closed[k] != 1 {
			t.Errorf("worker %v: opened %d closed %d", k, n, closed[k])
		}
	}
	if len(closed) != len(opened) {
		t.Errorf("closed %v, opened %v", closed, opened)
	}
}

// Elastic(0, 2): no worker before the first task; the first Do grows one;
// Capacity tells the max and the queue; Resize is refused.
func TestA16tElasticFromZero(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Elastic(0, 2, a16tGuard))
	c := p.Capacity()
	if c.MaxWorkers != 2 || c.Queue != 8 || c.InFlight() != 10 || c.Workers != 0 {
		t.Errorf("Capacity of Elastic(0,2) = %+v, want Workers 0, MaxWorkers 2, Queue 4×2", c)
	}
	if st := p.Stats(); st.Workers != 0 {
		t.Errorf("Stats.Workers = %d before any task", st.Workers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	// Two tasks that must run side by side: the pool grows to two.
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	g, _ := p.Group(ctx)
	for range 2 {
		g.Go(func(context.Context, resources.Worker) error { arrived.Done(); <-both; return nil })
	}
	a16tRecv(t, both, "elastic pool to grow to two")
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(1); err == nil {
		t.Error("Resize of an elastic pool = nil")
	}
	if c := p.Capacity(); c.Workers > 2 {
		t.Errorf("Capacity.Workers = %d > max", c.Workers)
	}
}

// ErrBroken, a panic and a Goexit each rebuild the worker: its next task
// sees the next generation; the old resources closed exactly once.
func TestA16tRebuildAfterBrokenPanicGoexit(t *testing.T) {
	type Res struct{ w resources.Worker }
	var mu sync.Mutex
	closed := map[int]int{}
	var errs a16tErrs
	var p *workerpool.Pool[*Res]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Res]("a16t-rebuild", workerpool.Workers(1), workerpool.ErrorHandler(errs.handle),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Res, func(), error) {
				return &Res{w}, func() { mu.Lock(); closed[w.Generation]++; mu.Unlock() }, nil
			}))),
		fx.Populate(&p))
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Stop(ctx)
	gen := func() int {
		var g int
		if err := p.Do(ctx, func(_ context.Context, r *Res) error { g = r.w.Generation; return nil }); err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := gen(); g != 0 {
		t.Fatalf("first generation %d", g)
	}
	err := p.Do(ctx, func(context.Context, *Res) error { return fmt.Errorf("conn reset: %w", resources.ErrBroken) })
	if !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("Do = %v", err)
	}
	if g := gen(); g != 1 {
		t.Errorf("after ErrBroken: generation %d, want 1", g)
	}
	// From Go: the ErrorHandler hears of it; the worker rebuilds all the same.
	if err := p.Go(ctx, func(context.Context, *Res) error { panic("a16t") }); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != 2 {
		t.Errorf("after a panic of Go: generation %d, want 2", g)
	}
	if err := p.Go(ctx, func(context.Context, *Res) error { return fmt.Errorf("w: %w", resources.ErrBroken) }); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != 3 {
		t.Errorf("after ErrBroken from Go: generation %d, want 3", g)
	}
	if err := p.Do(ctx, func(context.Context, *Res) error { panic(resources.ErrBroken) }); !errors.Is(err, resources.ErrBroken) {
		t.Errorf("panic(ErrBroken): Do = %v", err)
	}
	if g := gen(); g != 4 {
		t.Errorf("after panic(ErrBroken): generation %d, want 4", g)
	}
	st := p.Stats()
	if st.Restarts != 4 || st.Panics != 2 || st.Failed != 4 {
		t.Errorf("Stats Restarts=%d Panics=%d Failed=%d, want 4 2 4", st.Restarts, st.Panics, st.Failed)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for g := 0; g <= 4; g++ {
		if closed[g] != 1 {
			t.Errorf("generation %d closed %d times", g, closed[g])
		}
	}
	e := errs.all()
	if len(e) != 2 {
		t.Errorf("ErrorHandler heard %d errors, want 2 (Go's panic and ErrBroken): %v", len(e), e)
	}
}

// A task submitting to its own pool: TryGo from the only worker of a
// hand-off pool finds no room (never blocks); Go with queue room returns at
// once and the task runs after.
func TestA16tSelfSubmission(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(0))
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	var took bool
	if err := p.Do(ctx, func(context.Context, resources.Worker) error {
		took = p.TryGo(func(context.Context, resources.Worker) error { return nil })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if took {
		t.Error("TryGo from the only worker of a hand-off pool took a task")
	}

	p2, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(2))
	child := make(chan struct{})
	childCtx := make(chan any, 1)
	if err := p2.Do(context.WithValue(ctx, a16tKey{}, "parent"), func(tctx context.Context, _ resources.Worker) error {
		return p2.Go(tctx, func(c context.Context, _ resources.Worker) error {
			childCtx <- c.Value(a16tKey{})
			close(child)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	// The parent's Do has returned and its context ended; the child of Go
	// outlives it and still runs with its values.
	a16tRecv(t, child, "child task")
	if v := <-childCtx; v != "parent" {
		t.Errorf("child's value = %v", v)
	}
}

// GoReport under Resizes that keep changing the pool's size, and under an
// elastic pool whose workers keep retiring: every task reported exactly
// once, Succeeded (Drain without deadline runs everything).
func TestA16tExactlyOnceUnderResizeAndRetire(t *testing.T) {
	for _, mode := range []string{"resize", "elastic"} {
		t.Run(mode, func(t *testing.T) {
			clock := fxpooltest.NewClock()
			opts := []workerpool.Option{workerpool.Workers(2), workerpool.QueueSize(4)}
			if mode == "elastic" {
				opts = []workerpool.Option{workerpool.Elastic(0, 3, time.Millisecond), workerpool.QueueSize(4), clock.Option()}
			}
			p, _ := a16tStart(t, opts...)
			const subs, per = 4, 1500
			counts := make([]atomic.Int32, subs*per)
			outcomes := make([]atomic.Uint32, subs*per)
			var chaosStop atomic.Bool
			chaosDone := make(chan struct{})
			go func() {
				defer close(chaosDone)
				for i := 0; !chaosStop.Load(); i++ {
					if mode == "resize" {
						_ = p.Resize(1 + i%4)
					} else {
						clock.Add(time.Millisecond)
					}
					runtime.Gosched()
				}
			}()
			var wg sync.WaitGroup
			for s := range subs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						k := s*per + i
						if err := p.GoReport(context.Background(), func(context.Context, resources.Worker) error { return nil },
							func(o workerpool.Outcome, err error) {
								counts[k].Add(1)
								outcomes[k].Store(uint32(o))
							}); err != nil {
							t.Errorf("GoReport: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			chaosStop.Store(true)
			<-chaosDone
			if err := p.Stop(context.Background(), workerpool.Drain); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for k := range counts {
				if counts[k].Load() != 1 || workerpool.Outcome(outcomes[k].Load()) != workerpool.Succeeded {
					if bad++; bad < 5 {
						t.Errorf("task %d reported %d times, last %v", k, counts[k].Load(), workerpool.Outcome(outcomes[k].Load()))
					}
				}
			}
			if st := p.Stats(); st.Done != subs*per || st.Dropped != 0 {
				t.Errorf("Stats Done=%d Dropped=%d", st.Done, st.Dropped)
			}
		})
	}
}
