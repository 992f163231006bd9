package workerpool_test

// Round 6 of adversarial tests: the queue is now a lock-free ring with parked
// workers and submitters. These tests check QueueSize's documented contract:
// "When the queue is full, Pool.Go blocks and Pool.TryGo refuses. 0 makes
// every submission wait for a free worker." Deadlines are hang guards only.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// a6Blockers occupies k workers, each until its own channel is closed.
type a6Blockers struct {
	rel  []chan struct{}
	once []sync.Once
}

func (b *a6Blockers) release(i int) { b.once[i].Do(func() { close(b.rel[i]) }) }
func (b *a6Blockers) releaseAll() {
	for i := range b.rel {
		b.release(i)
	}
}

func a6Block(t *testing.T, p *workerpool.Pool[W], k int) *a6Blockers {
	t.Helper()
	b := &a6Blockers{rel: make([]chan struct{}, k), once: make([]sync.Once, k)}
	var started sync.WaitGroup
	started.Add(k)
	for i := range k {
		b.rel[i] = make(chan struct{})
		ch := b.rel[i]
		if err := p.Go(context.Background(), func(context.Context, W) error {
			started.Done()
			<-ch
			return nil
		}); err != nil {
			t.Fatalf("blocker %d: %v", i, err)
		}
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	atkWait(t, "blockers start", 20*time.Second, done)
	t.Cleanup(b.releaseAll)
	return b
}

func a6Stop(t *testing.T, p *workerpool.Pool[W], policy workerpool.StopPolicy) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.Stop(ctx, policy)
}

// QueueSize(n): with every worker busy, TryGo takes exactly n tasks and refuses
// the next, over several rounds (so that the ring wraps around), and Stats
// counts them as queued.
func TestAttack6_TryGoRefusesExactlyAtQueueSize(t *testing.T) {
	for _, workers := range []int{1, 3} {
		for _, n := range []int{1, 2, 3, 5, 7, 1024} {
			t.Run(fmt.Sprintf("w%d_q%d", workers, n), func(t *testing.T) {
				p, _ := atkStart[W](t, fmt.Sprintf("a6q%d_%d", workers, n), workerpool.Workers(workers), workerpool.QueueSize(n))
				if c := p.Capacity(); c.Queue != n || c.InFlight() != workers+n {
					t.Fatalf("Capacity = %+v, InFlight %d; want Queue %d, InFlight %d", c, c.InFlight(), n, workers+n)
				}
				var ran atomic.Int64
				task := func(context.Context, W) error { ran.Add(1); return nil }
				total := 0
				rounds := 4
				if n == 1024 {
					rounds = 2
				}
				for round := range rounds {
					b := a6Block(t, p, workers)
					for i := range n {
						if !p.TryGo(task) {
							t.Fatalf("round %d: TryGo %d of %d refused with room in the queue (Queued %d)", round, i+1, n, p.Stats().Queued)
						}
					}
					for i := range 3 {
						if p.TryGo(task) {
							t.Fatalf("round %d: TryGo %d past a full queue of %d accepted (Queued %d)", round, i+1, n, p.Stats().Queued)
						}
					}
					if q := p.Stats().Queued; q != n {
						t.Errorf("round %d: Stats.Queued = %d with a full queue of %d", round, q, n)
					}
					total += n
					b.releaseAll()
					atkPoll(t, "queued tasks run", 20*time.Second, func() bool { return ran.Load() == int64(total) })
				}
				if err := a6Stop(t, p, workerpool.Drain); err != nil {
					t.Fatal(err)
				}
				if got := ran.Load(); got != int64(total) {
					t.Fatalf("ran %d tasks, accepted %d", got, total)
				}
			})
		}
	}
}

// QueueSize(0): TryGo refuses while every worker is busy, and succeeds once one
// idles. Go (and Do, Submit) wait for a free worker; none is lost or duplicated.
func TestAttack6_QueueZero(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("w%d", workers), func(t *testing.T) {
			p, _ := atkStart[W](t, fmt.Sprintf("a6q0_%d", workers), workerpool.Workers(workers), workerpool.QueueSize(0))
			if c := p.Capacity(); c.Queue != 0 || c.InFlight() != workers {
				t.Fatalf("Capacity = %+v", c)
			}
			// Idle pool: TryGo eventually finds a worker.
			var ran atomic.Int64
			counted := func(context.Context, W) error { ran.Add(1); return nil }
			atkPoll(t, "TryGo on an idle QueueSize(0) pool", 20*time.Second, func() bool { return p.TryGo(counted) })
			atkPoll(t, "first task runs", 20*time.Second, func() bool { return ran.Load() == 1 })

			for round := range 5 {
				b := a6Block(t, p, workers)
				for i := range 20 {
					if p.TryGo(counted) {
						t.Fatalf("round %d: TryGo %d accepted with every worker busy and QueueSize(0)", round, i)
					}
				}
				if q := p.Stats().Queued; q != 0 {
					t.Fatalf("round %d: Queued = %d with QueueSize(0)", round, q)
				}
				// Go must wait while every worker is busy.
				goDone := make(chan error, 1)
				var goRan atomic.Int64
				go func() {
					goDone <- p.Go(context.Background(), func(context.Context, W) error { goRan.Add(1); return nil })
				}()
				select {
				case err := <-goDone:
					t.Fatalf("round %d: Go returned %v with every worker busy and QueueSize(0)", round, err)
				case <-time.After(30 * time.Millisecond):
				}
				if p.TryGo(counted) {
					t.Fatalf("round %d: TryGo accepted with every worker busy and Go waiting", round)
				}
				// Free one worker: the waiting Go gets it.
				b.release(0)
				select {
				case err := <-goDone:
					if err != nil {
						t.Fatalf("round %d: Go: %v", round, err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("round %d: Go still blocked after a worker was freed", round)
				}
				atkPoll(t, "Go's task runs", 20*time.Second, func() bool { return goRan.Load() == 1 })
				// Now that worker idles again: TryGo eventually succeeds.
				before := ran.Load()
				atkPoll(t, "TryGo after a worker idles", 20*time.Second, func() bool { return p.TryGo(counted) })
				atkPoll(t, "TryGo's task runs", 20*time.Second, func() bool { return ran.Load() == before+1 })
				b.releaseAll()
			}
			if err := a6Stop(t, p, workerpool.Drain); err != nil {
				t.Fatal(err)
			}
			if got := ran.Load(); got != 6 {
				t.Fatalf("ran %d TryGo tasks, want 6", got)
			}
		})
	}
}

// QueueSize(0): TryGo in a loop against busy workers that free themselves
// one at a time: every accepted task runs once, and never more run at once
// than there are workers.
func TestAttack6_QueueZeroNeverOverWorkers(t *testing.T) {
	const workers = 3
	p, _ := atkStart[W](t, "a6q0over", workerpool.Workers(workers), workerpool.QueueSize(0))
	var inflight, maxIn, ran atomic.Int64
	gate := make(chan struct{}, 1000)
	task := func(context.Context, W) error {
		n := inflight.Add(1)
		for {
			m := maxIn.Load()
			if n <= m || maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		<-gate
		inflight.Add(-1)
		ran.Add(1)
		return nil
	}
	accepted := 0
	deadline := time.Now().Add(20 * time.Second)
	for accepted < 300 && time.Now().Before(deadline) {
		if p.TryGo(task) {
			accepted++
			// Accepted counts (submitted, not yet through the gate) never exceed workers.
			if in := int64(accepted) - ran.Load(); in > workers {
				t.Fatalf("%d tasks accepted and not finished with %d workers and QueueSize(0)", in, workers)
			}
		} else {
			select {
			case gate <- struct{}{}:
			default:
				runtime.Gosched()
			}
		}
	}
	close(gate)
	if err := a6Stop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != int64(accepted) {
		t.Fatalf("ran %d of %d accepted", ran.Load(), accepted)
	}
	if maxIn.Load() > workers {
		t.Fatalf("%d tasks ran at once on %d workers", maxIn.Load(), workers)
	}
	if s := p.Stats(); s.Done != uint64(accepted)+0 || s.Dropped != 0 {
		t.Fatalf("Stats after stop: Done %d Dropped %d, accepted %d", s.Done, s.Dropped, accepted)
	}
}

// Go blocks while the queue is full and resumes when room appears; a Go whose
// ctx ends while it is blocked returns ctx's error and its task never runs; a
// Go blocked when the pool stops returns ErrClosed and its task never runs.
func TestAttack6_GoBlocksOnFullQueue(t *testing.T) {
	for _, n := range []int{0, 1, 3, 7} {
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("w%d_q%d", workers, n), func(t *testing.T) {
				var dropped, handled atomic.Int64
				p, _ := atkStart[W](t, fmt.Sprintf("a6gb%d_%d", workers, n), workerpool.Workers(workers), workerpool.QueueSize(n),
					workerpool.OnDropped[W](func(context.Context, func(context.Context, W) error) { dropped.Add(1) }),
					workerpool.ErrorHandler(func(error) { handled.Add(1) }))
				var ran atomic.Int64
				ok := func(context.Context, W) error { ran.Add(1); return nil }
				b := a6Block(t, p, workers)
				for i := range n {
					if err := p.Go(context.Background(), ok); err != nil {
						t.Fatalf("filling Go %d: %v", i, err)
					}
				}
				// 1. Go blocks; freeing a worker lets it in.
				var resumed atomic.Int64
				res := make(chan error, 1)
				go func() {
					res <- p.Go(context.Background(), func(context.Context, W) error { resumed.Add(1); return nil })
				}()
				select {
				case err := <-res:
					t.Fatalf("Go returned %v with a full queue of %d", err, n)
				case <-time.After(30 * time.Millisecond):
				}
				b.release(0)
				select {
				case err := <-res:
					if err != nil {
						t.Fatalf("Go after room appeared: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("Go still blocked after room appeared")
				}
				// Refill to full, deterministically: wait for the freed
				// worker to run everything queued, block it again, and queue
				// n tasks that wait on a gate.
				atkPoll(t, "queue drains", 20*time.Second, func() bool { return ran.Load() == int64(n) && resumed.Load() == 1 })
				b0 := a6Block(t, p, 1)
				gate := make(chan struct{})
				var extra int
				for i := range n {
					if err := p.Go(context.Background(), func(context.Context, W) error { <-gate; ran.Add(1); return nil }); err != nil {
						t.Fatalf("refill %d: %v", i, err)
					}
					extra++
				}
				// 2. Go with a ctx that ends while blocked.
				ctx, cancel := context.WithCancelCause(context.Background())
				var ctxRan atomic.Int64
				res2 := make(chan error, 1)
				go func() {
					res2 <- p.Go(ctx, func(context.Context, W) error { ctxRan.Add(1); return nil })
				}()
				select {
				case err := <-res2:
					// The freed worker may still have been getting to the
					// queue: that is room. Only check that the task then runs.
					t.Fatalf("Go returned %v before its ctx ended, with a full queue", err)
				case <-time.After(30 * time.Millisecond):
				}
				cause := errors.New("a6 gave up")
				cancel(cause)
				select {
				case err := <-res2:
					if !errors.Is(err, context.Canceled) && !errors.Is(err, cause) {
						t.Fatalf("Go with ended ctx returned %v, want ctx's error", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("Go blocked past its ctx's end")
				}
				// 3. Go blocked when the pool stops.
				var stopRan atomic.Int64
				res3 := make(chan error, 1)
				go func() {
					res3 <- p.Go(context.Background(), func(context.Context, W) error { stopRan.Add(1); return nil })
				}()
				select {
				case err := <-res3:
					t.Fatalf("Go returned %v with a full queue", err)
				case <-time.After(30 * time.Millisecond):
				}
				stopErr := make(chan error, 1)
				go func() { stopErr <- a6Stop(t, p, workerpool.Drain) }()
				select {
				case err := <-res3:
					if !errors.Is(err, workerpool.ErrClosed) {
						t.Fatalf("Go blocked at stop returned %v, want ErrClosed", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("Go still blocked after Stop began")
				}
				b.releaseAll()
				b0.releaseAll()
				close(gate)
				if err := <-stopErr; err != nil {
					t.Fatal(err)
				}
				if ctxRan.Load() != 0 || stopRan.Load() != 0 {
					t.Fatalf("refused tasks ran: ctx-ended %d, stopped %d", ctxRan.Load(), stopRan.Load())
				}
				if resumed.Load() != 1 {
					t.Fatalf("resumed task ran %d times", resumed.Load())
				}
				want := int64(n + extra)
				if ran.Load() != want {
					t.Fatalf("ran %d queued tasks, want %d", ran.Load(), want)
				}
				if dropped.Load() != 0 || handled.Load() != 0 {
					t.Fatalf("Drain with time to spare: OnDropped %d, ErrorHandler %d", dropped.Load(), handled.Load())
				}
				s := p.Stats()
				acc := uint64(workers + n + 1 + 1 + extra)
				if s.Done+s.Dropped != acc {
					t.Fatalf("Stats: Done %d + Dropped %d != accepted %d", s.Done, s.Dropped, acc)
				}
			})
		}
	}
}

// QueueSize(0): a worker that is waiting for a task (Stats.Busy 0) has room,
// so TryGo finds it. ("TryGo submits a task only if a worker or the queue has
// room now"; the CHANGELOG's fix: "TryGo right after Start, with every worker
// idle and QueueSize(0), finds a worker.") Each round waits until no worker is
// busy and then some, so the worker is surely waiting.
func TestAttack6_QueueZeroTryGoFindsWaitingWorker(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("w%d", workers), func(t *testing.T) {
			p, _ := atkStart[W](t, fmt.Sprintf("a6q0idle%d", workers), workerpool.Workers(workers), workerpool.QueueSize(0))
			var ran atomic.Int64
			task := func(context.Context, W) error { ran.Add(1); return nil }
			immediate, late := 0, 0
			for round := range 100 {
				atkPoll(t, "workers idle", 20*time.Second, func() bool { return p.Stats().Busy == 0 && ran.Load() == int64(round) })
				if p.TryGo(task) {
					immediate++
					continue
				}
				time.Sleep(20 * time.Millisecond)
				if p.Stats().Busy != 0 {
					t.Fatalf("round %d: a worker busy with nothing submitted", round)
				}
				if !p.TryGo(task) {
					t.Fatalf("round %d: TryGo refused twice, 20ms apart, with %d workers idle and nothing queued (Stats %+v)", round, workers, p.Stats())
				}
				late++
			}
			t.Logf("TryGo found an idle worker at once %d times, after a wait %d times", immediate, late)
		})
	}
}

// Order: no public documentation promises FIFO (internal/ring's does, for the
// queue itself). With one worker and one submitter, tasks queued behind a busy
// worker run in submission order, across wrap-arounds of the ring.
func TestAttack6_FIFOOneWorker(t *testing.T) {
	for _, n := range []int{1, 3, 7, 64} {
		t.Run(fmt.Sprintf("q%d", n), func(t *testing.T) {
			p, _ := atkStart[W](t, fmt.Sprintf("a6fifo%d", n), workerpool.Workers(1), workerpool.QueueSize(n))
			var mu sync.Mutex
			var order []int
			next := 0
			for round := range 5 {
				b := a6Block(t, p, 1)
				for range n {
					i := next
					next++
					if err := p.Go(context.Background(), func(context.Context, W) error {
						mu.Lock()
						order = append(order, i)
						mu.Unlock()
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				b.releaseAll()
				atkPoll(t, "round runs", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == next })
				_ = round
			}
			for i, v := range order {
				if v != i {
					t.Fatalf("position %d ran task %d: %v", i, v, order)
				}
			}
		})
	}
}

// Do, Submit and GoReport blocked on a full queue (QueueSize 0 and 2): when
// their ctx ends they return its error, the task never runs, and GoReport's
// report is never called ("If GoReport returns an error, the task was not
// accepted and report is never called").
func TestAttack6_BlockedSubmissionsGiveUpWithCtx(t *testing.T) {
	for _, q := range []int{0, 2} {
		t.Run(fmt.Sprintf("q%d", q), func(t *testing.T) {
			var dropped atomic.Int64
			p, _ := atkStart[W](t, fmt.Sprintf("a6ctx%d", q), workerpool.Workers(2), workerpool.QueueSize(q),
				workerpool.OnDropped[W](func(context.Context, func(context.Context, W) error) { dropped.Add(1) }))
			b := a6Block(t, p, 2)
			var queued atomic.Int64
			for range q {
				if err := p.Go(context.Background(), func(context.Context, W) error { queued.Add(1); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			var ran, reports atomic.Int64
			task := func(context.Context, W) error { ran.Add(1); return nil }
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					switch i % 4 {
					case 0:
						errs <- p.Do(ctx, task)
					case 1:
						_, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) { return 0, task(ctx, w) })
						errs <- err
					case 2:
						errs <- p.GoReport(ctx, task, func(workerpool.Outcome, error) { reports.Add(1) })
					case 3:
						errs <- p.Go(ctx, task)
					}
				}()
			}
			time.Sleep(30 * time.Millisecond)
			cancel()
			d := make(chan struct{})
			go func() { wg.Wait(); close(d) }()
			atkWait(t, "blocked submitters give up", 20*time.Second, d)
			close(errs)
			for err := range errs {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("blocked submission returned %v, want context.Canceled", err)
				}
			}
			b.releaseAll()
			atkPoll(t, "queued run", 20*time.Second, func() bool { return queued.Load() == int64(q) })
			if err := a6Stop(t, p, workerpool.Drain); err != nil {
				t.Fatal(err)
			}
			if ran.Load() != 0 || reports.Load() != 0 || dropped.Load() != 0 {
				t.Fatalf("refused submissions: ran %d, reports %d, OnDropped %d", ran.Load(), reports.Load(), dropped.Load())
			}
			if s := p.Stats(); s.Done != uint64(2+q) || s.Dropped != 0 {
				t.Fatalf("Stats %+v", s)
			}
		})
	}
}
