package workerpool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Shrink while every worker is busy, then grow at once: removed workers
// finish their task and close exactly once; no worker slot opens a new set
// while its old set is still open; everything closes at the stop.
func TestA16lResizeShrinkThenGrowWhileBusy(t *testing.T) {
	h := a16lNew()
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(3), workerpool.QueueSize(8), rec.Option()})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	running := make(chan int, 3)
	results := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			results <- p.Do(ctx, func(_ context.Context, d a16lDeps) error {
				h.checkTask(d)
				running <- d.W.ID
				<-release
				h.checkTask(d)
				return nil
			})
		}()
	}
	for i := 0; i < 3; i++ {
		a16lAwait(t, running, "busy task")
	}
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(2); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(4); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i := 0; i < 3; i++ {
		if err := a16lAwait(t, results, "busy task result"); err != nil {
			t.Errorf("busy task: %v", err)
		}
	}
	// Every worker serves again: 4 tasks at once, each on its own worker.
	var wg sync.WaitGroup
	gate := make(chan struct{})
	var arrived atomic.Int32
	ids := make(chan int, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Do(ctx, func(_ context.Context, d a16lDeps) error {
				h.checkTask(d)
				ids <- d.W.ID
				if arrived.Add(1) == 4 {
					close(gate)
				}
				<-gate
				return nil
			}); err != nil {
				t.Errorf("Do: %v", err)
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[int]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("two concurrent tasks on worker %d", id)
		}
		seen[id] = true
	}
	if c := p.Capacity(); c.Workers != 4 || c.MaxWorkers != 4 {
		t.Errorf("Capacity %+v after Resize(4)", c)
	}
	// Shrink for real, wait for the removed workers to close, grow again:
	// the slots are reused.
	closedBefore := len(a16lEvents[workerpool.WorkerClosed](h))
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, "three removed workers closing", func([]a16lEntry) bool {
		return len(a16lEvents[workerpool.WorkerClosed](h)) == closedBefore+3
	})
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		_ = a16lGenOf(t, ctx, p, h)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	h.checkLifecycle(t, true)
	rec.Verify(t)
	var opened []resources.Worker
	for _, e := range a16lEvents[workerpool.WorkerOpened](h) {
		opened = append(opened, e.Worker)
	}
	t.Logf("generations opened: %v", opened)
}

// Workers added by Resize are still opening (ignoring their context) when
// the stop comes: the stop returns by its deadline, and once the opens
// return, those workers close what they opened, exactly once, and take no
// task.
func TestA16lResizeAddedWorkersOpeningDuringStop(t *testing.T) {
	h := a16lNew()
	h.ignoreStore.Store(true) // the opens ignore their context past the stop
	release := make(chan struct{})
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "B" && w.ID >= 1 {
			<-release
		}
		return nil
	})
	var ctxProblems atomic.Int32
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if w.ID >= 1 {
			if _, ok := ctx.Deadline(); ctx.Err() != nil || !ok {
				ctxProblems.Add(1)
			}
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	var tasksAfterStop atomic.Int32
	var stopped atomic.Bool
	app := h.app(&p, []workerpool.Option{workerpool.Workers(1)})
	sctx, scancel := a16lCtx(a16lGuard)
	defer scancel()
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, "the added workers opening B", func(es []a16lEntry) bool {
		return a16lCount(es, "try", "B", 1) == 1 && a16lCount(es, "try", "B", 2) == 1
	})
	// Queue tasks: worker 0 runs them.
	for i := 0; i < 4; i++ {
		_ = p.Go(sctx, func(_ context.Context, d a16lDeps) error {
			if stopped.Load() {
				tasksAfterStop.Add(1)
			}
			return nil
		})
	}
	ctx, cancel := a16lCtx(2 * time.Second)
	defer cancel()
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	err := a16lAwait(t, stopErr, "app.Stop")
	stopped.Store(true)
	t.Logf("stop: %v", err)
	for _, k := range a16lOpenNow(h.snapshot()) {
		if k.id == 0 {
			t.Errorf("worker 0 still has %v open after the stop", k)
		}
	}
	close(release)
	h.waitFor(t, "the added workers closing what they opened", func(es []a16lEntry) bool {
		return len(a16lOpenNow(es)) == 0 && a16lCount(es, "open", "B", 1) == 1 && a16lCount(es, "open", "B", 2) == 1
	})
	h.checkLifecycle(t, true)
	if n := ctxProblems.Load(); n != 0 {
		t.Errorf("%d cleanups of workers that came back after the stop gave up got an ended context or none with a deadline", n)
	}
	if n := tasksAfterStop.Load(); n != 0 {
		t.Errorf("%d tasks ran after app.Stop returned", n)
	}
	if n := a16lCount(h.snapshot(), "open", "C", 1) + a16lCount(h.snapshot(), "open", "C", 2); n != 0 {
		t.Errorf("a worker added by Resize went on opening C after the stop had returned (%d)", n)
	}
}

// The same with constructors that honour their context and a Cancel stop
// with a long budget: the stop returns with nothing open.
func TestA16lResizeAddedWorkersHonourStopContext(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Cancel, workerpool.DropQueued, workerpool.Drain} {
		t.Run(policy.String(), func(t *testing.T) {
			h := a16lNew()
			h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
				if res == "B" && w.ID >= 1 {
					<-ctx.Done()
					return context.Cause(ctx)
				}
				return nil
			})
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, []workerpool.Option{workerpool.Workers(1)})
			sctx, scancel := a16lCtx(a16lGuard)
			defer scancel()
			if err := app.Start(sctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Resize(3); err != nil {
				t.Fatal(err)
			}
			h.waitFor(t, "the added workers opening B", func(es []a16lEntry) bool {
				return a16lCount(es, "try", "B", 1) == 1 && a16lCount(es, "try", "B", 2) == 1
			})
			ctx, cancel := a16lCtx(5 * time.Second)
			defer cancel()
			err := p.Stop(ctx, policy)
			if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
				t.Errorf("Pool.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
			}
			_ = app.Stop(sctx)
			h.checkLifecycle(t, true)
		})
	}
}

// An elastic pool grows while the stop comes: the growing worker's open
// returns once the stop has begun. Under Drain with a long budget every
// queued task runs, each reported once; nothing is left open.
func TestA16lElasticGrowingDuringStop(t *testing.T) {
	h := a16lNew()
	release := make(chan struct{})
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "A" {
			<-release
		}
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Elastic(0, 2, time.Hour), workerpool.QueueSize(4)})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	outcomes := map[workerpool.Outcome]int{}
	reports := make(chan struct{}, 3)
	for i := 0; i < 3; i++ {
		if err := p.GoReport(ctx, func(_ context.Context, d a16lDeps) error { h.checkTask(d); return nil },
			func(o workerpool.Outcome, err error) {
				mu.Lock()
				outcomes[o]++
				mu.Unlock()
				reports <- struct{}{}
			}); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor(t, "a worker growing", func(es []a16lEntry) bool { return a16lCount(es, "try", "A", -1) >= 1 })
	stopErr := make(chan error, 1)
	go func() { stopErr <- app.Stop(ctx) }()
	a16lPoll(t, "the pool to stop serving", func() bool { return !p.Serving() })
	close(release)
	err := a16lAwait(t, stopErr, "app.Stop")
	if left := a16lOpenNow(h.snapshot()); len(left) != 0 {
		t.Errorf("app.Stop returned (%v) with resources open: %v\n%s", err, left, h.dump())
	}
	for i := 0; i < 3; i++ {
		a16lAwait(t, reports, "report")
	}
	mu.Lock()
	if outcomes[workerpool.Succeeded] != 3 {
		t.Errorf("outcomes %v: under Drain with a 30 s budget all 3 queued tasks should run", outcomes)
	}
	mu.Unlock()
	if err != nil {
		t.Errorf("app.Stop: %v", err)
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("elastic Capacity().Workers = %d after the stop, want 0", c.Workers)
	}
	if st := p.Stats(); st.Workers != 0 || st.Opening != 0 || st.Closing != 0 || st.Busy != 0 || st.Queued != 0 {
		t.Errorf("Stats after the stop: %+v", st)
	}
	h.checkLifecycle(t, true)
}

// Elastic: a worker retired after idling closes once, with a context that
// has a deadline (CloseTimeout); grown again in its slot, it opens the next
// generation, after the old one closed.
func TestA16lElasticRetireAndRegrowNextGeneration(t *testing.T) {
	h := a16lNew()
	clock := fxpooltest.NewClock()
	var noDeadline atomic.Int32
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		if _, ok := ctx.Deadline(); !ok {
			noDeadline.Add(1)
		}
		return nil
	})
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Elastic(1, 2, time.Minute), workerpool.QueueSize(4), clock.Option(), rec.Option()})
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	grow := func() map[int]resources.Worker {
		release := make(chan struct{})
		running := make(chan resources.Worker, 2)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Do(ctx, func(_ context.Context, d a16lDeps) error {
					h.checkTask(d)
					running <- d.W
					<-release
					return nil
				}); err != nil {
					t.Errorf("Do: %v", err)
				}
			}()
		}
		ws := map[int]resources.Worker{}
		for i := 0; i < 2; i++ {
			w := a16lAwait(t, running, "a task on a grown pool")
			ws[w.ID] = w
		}
		close(release)
		wg.Wait()
		return ws
	}
	first := grow()
	if len(first) != 2 {
		t.Fatalf("two blocking tasks ran on workers %v", first)
	}
	closedBefore := len(a16lEvents[workerpool.WorkerClosed](h))
	if err := clock.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	h.waitFor(t, "the idle worker retiring", func([]a16lEntry) bool {
		return len(a16lEvents[workerpool.WorkerClosed](h)) > closedBefore
	})
	retired := a16lEvents[workerpool.WorkerClosed](h)[closedBefore].Worker
	second := grow()
	again, ok := second[retired.ID]
	if !ok {
		// the slot was not reused: nothing to compare
		t.Logf("regrown on workers %v, retired %v", second, retired)
	} else if again.Generation != retired.Generation+1 {
		t.Errorf("slot %d grown again with generation %d, want %d", retired.ID, again.Generation, retired.Generation+1)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := noDeadline.Load(); n != 0 {
		t.Errorf("%d cleanups (retirement or stop) got a context without a deadline", n)
	}
	h.checkLifecycle(t, true)
	rec.Verify(t)
}

// A worker that an elastic pool grows, or that Resize adds, whose first
// attempts to open fail: it retries, and its first set that opens is
// generation 0 ("a failed attempt to open does not use up a number"); the
// failed attempts closed what they opened.
func TestA16lGrownWorkerFailedOpensKeepGenerationZero(t *testing.T) {
	for _, mode := range []string{"elastic", "resize"} {
		t.Run(mode, func(t *testing.T) {
			h := a16lNew()
			var fails atomic.Int32
			h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
				if res == "B" && w.ID == 1 && fails.Add(1) <= 2 {
					return errA16lInjected
				}
				return nil
			})
			opts := []workerpool.Option{workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond), workerpool.QueueSize(4)}
			if mode == "elastic" {
				opts = append(opts, workerpool.Elastic(1, 2, time.Hour))
			} else {
				opts = append(opts, workerpool.Workers(1))
			}
			var p *workerpool.Pool[a16lDeps]
			app := h.app(&p, opts)
			ctx, cancel := a16lCtx(a16lGuard)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			busy := make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- p.Do(ctx, func(context.Context, a16lDeps) error { close(busy); <-release; return nil })
			}()
			<-busy
			if mode == "resize" {
				if err := p.Resize(2); err != nil {
					t.Fatal(err)
				}
			}
			var got resources.Worker
			second := make(chan error, 1)
			go func() {
				second <- p.Do(ctx, func(_ context.Context, d a16lDeps) error { h.checkTask(d); got = d.W; return nil })
			}()
			if err := a16lAwait(t, second, "the task on the grown worker"); err != nil {
				t.Fatal(err)
			}
			close(release)
			a16lAwait(t, first, "first task")
			if got.ID != 1 || got.Generation != 0 {
				t.Errorf("task ran on %v, want worker 1 generation 0", got)
			}
			if n := a16lCount(h.snapshot(), "openfail", "B", 1); n != 2 {
				t.Errorf("%d failed opens, want 2", n)
			}
			if err := app.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			h.checkLifecycle(t, true)
		})
	}
}
