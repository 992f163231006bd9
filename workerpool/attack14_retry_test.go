package workerpool_test

// Target 1: under Drain with a deadline, a worker whose reopen fails goes on
// retrying while tasks are queued, until two fifths of the budget; an idle
// pool's stop, a stop without deadline, Cancel and DropQueued end the
// retries at once. Every stop here has a 25 s budget unless said otherwise:
// two fifths of it is 10 s, the "drain deadline" the stops must beat.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

const budget14 = 25 * time.Second
const drainDeadline14 = 10 * time.Second // 2/5 of budget14

// breakOne makes one worker break (ErrBroken), with every rebuild failing,
// and waits until its reopen has failed; it returns the broken worker's ID.
func breakOne(t *testing.T, p *workerpool.Pool[r14], f *fix14) int {
	t.Helper()
	var id atomic.Int32
	err := p.Do(context.Background(), func(ctx context.Context, r r14) error {
		id.Store(int32(r.W.ID))
		return fmt.Errorf("attack14: %w", resources.ErrBroken)
	})
	if err == nil {
		t.Fatal("Do of a broken task returned nil")
	}
	atkPoll(t, "a failed reopen", 5*time.Second, func() bool { return f.failedOpens.Load() >= 1 })
	return int(id.Load())
}

// TestAttack14HealthyWorkersDrainWithoutWaitingForTheRetrier: two healthy
// workers drain the queue; the third retries a failed open with a long
// backoff. The stop must not wait for the retrier's backoff, let alone two
// fifths of the budget.
func TestAttack14HealthyWorkersDrainWithoutWaitingForTheRetrier(t *testing.T) {
	for _, bo := range [][2]time.Duration{{2 * time.Second, 5 * time.Second}, {30 * time.Second, 60 * time.Second}} {
		for _, queued := range []int{0, 1, 40} {
			t.Run(fmt.Sprintf("backoff%v-queued%d", bo[0], queued), func(t *testing.T) {
				f := newFix14()
				f.setFail(func(w W) bool { return w.Generation > 0 })
				p, app := app14(t, f, workerpool.Workers(3), workerpool.QueueSize(64), workerpool.RestartBackoff(bo[0], bo[1]))
				breakOne(t, p, f)
				var rs reps14
				for range queued {
					if _, err := rs.goReport(p, func(ctx context.Context, r r14) error {
						time.Sleep(time.Millisecond)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), budget14)
				defer cancel()
				took, err := timedStop(t, "Pool.Stop", 30*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
				if took >= drainDeadline14 {
					t.Errorf("Stop took %v: not before the drain deadline (%v), though two healthy workers drained the queue", took, drainDeadline14)
				}
				t.Logf("stop took %v, err %v", took, err)
				ran, notRun := rs.check(t)
				if notRun != 0 || ran != queued {
					t.Errorf("Drain with two healthy workers: ran %d, not run %d of %d", ran, notRun, queued)
				}
				_ = app.Stop(context.Background())
				f.checkExactlyOnce(t)
				statsZero(t, p, 5*time.Second)
			})
		}
	}
}

// TestAttack14LoneRetrierRunsTheQueueOnceItReopens: the only worker fails
// its reopen twice, then succeeds: under Drain with a deadline, every queued
// task runs.
func TestAttack14LoneRetrierRunsTheQueueOnceItReopens(t *testing.T) {
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			f := newFix14()
			var fails atomic.Int32
			f.setFail(func(w W) bool { return w.Generation > 0 && fails.Add(1) <= 2 })
			p, app := app14(t, f, workerpool.Workers(1), workerpool.QueueSize(64), workerpool.RestartBackoff(50*time.Millisecond, 100*time.Millisecond))
			breakOne(t, p, f)
			var rs reps14
			for range 20 {
				if _, err := rs.goReport(p, nil); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), budget14)
			defer cancel()
			took, err := drainStop14(t, round%2 == 1, p, app, ctx)
			if err != nil {
				t.Errorf("stop: %v", err)
			}
			if took >= drainDeadline14 {
				t.Errorf("stop took %v", took)
			}
			ran, notRun := rs.check(t)
			if ran != 20 || notRun != 0 {
				t.Errorf("the retrier reopened at its third try, yet ran %d, not run %d of 20", ran, notRun)
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14LoneRetrierGivesUpAtTwoFifths: the only worker never reopens;
// under Drain with a 2.5 s budget it keeps retrying during the stop, the
// queue is reported not run at two fifths, and no retry happens after the
// stop returned.
func TestAttack14LoneRetrierGivesUpAtTwoFifths(t *testing.T) {
	f := newFix14()
	f.setFail(func(w W) bool { return w.Generation > 0 })
	p, app := app14(t, f, workerpool.Workers(1), workerpool.QueueSize(64), workerpool.RestartBackoff(20*time.Millisecond, 40*time.Millisecond))
	breakOne(t, p, f)
	var rs reps14
	for range 20 {
		if _, err := rs.goReport(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := f.failedOpens.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	stopAt := time.Now()
	took, err := timedStop(t, "Pool.Stop", 15*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
	t.Logf("stop took %v, err %v, failed opens during it %d", took, err, f.failedOpens.Load()-before)
	if took > 10*time.Second { // a margin for a busy machine: the stop gives up at 2.25 s
		t.Errorf("stop took %v with a 2.5 s budget", took)
	}
	if f.failedOpens.Load()-before < 2 {
		t.Errorf("only %d failed opens during the stop: the retries did not go on while tasks were queued", f.failedOpens.Load()-before)
	}
	end := time.Now()
	time.Sleep(300 * time.Millisecond)
	if last := time.Unix(0, f.lastFail.Load()); last.After(end) {
		t.Errorf("a reopen was tried %v after the stop returned", last.Sub(end))
	}
	_ = stopAt
	ran, notRun := rs.check(t)
	if ran != 0 || notRun != 20 {
		t.Errorf("ran %d, not run %d of 20", ran, notRun)
	}
	_ = app.Stop(context.Background())
	f.checkExactlyOnce(t)
	statsZero(t, p, 5*time.Second)
}

// TestAttack14StopsThatEndRetriesAtOnce: an idle pool's Drain, a Drain
// without deadline, Cancel and DropQueued (with tasks queued) end a
// retrier's long backoff at once.
func TestAttack14StopsThatEndRetriesAtOnce(t *testing.T) {
	type tc struct {
		name     string
		queued   int
		policy   workerpool.StopPolicy
		deadline bool
		viaApp   bool
	}
	for _, c := range []tc{
		{"idle-drain", 0, workerpool.Drain, true, false},
		{"idle-drain-app", 0, workerpool.Drain, true, true},
		{"nodeadline-drain", 10, workerpool.Drain, false, false},
		{"nodeadline-drain-app", 10, workerpool.Drain, false, true},
		{"cancel", 10, workerpool.Cancel, true, false},
		{"dropqueued", 10, workerpool.DropQueued, true, false},
		{"cancel-app", 10, workerpool.Cancel, true, true},
		{"dropqueued-nodeadline", 10, workerpool.DropQueued, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFix14()
			f.setFail(func(w W) bool { return w.Generation > 0 })
			p, app := app14(t, f, workerpool.Workers(1), workerpool.QueueSize(64), workerpool.OnStop(c.policy),
				workerpool.RestartBackoff(30*time.Second, 60*time.Second))
			breakOne(t, p, f)
			var rs reps14
			for range c.queued {
				if _, err := rs.goReport(p, nil); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if c.deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, budget14)
				defer cancel()
			}
			took, err := timedStop(t, "stop", 40*time.Second, func() error {
				if c.viaApp {
					return app.Stop(ctx)
				}
				return p.Stop(ctx, c.policy)
			})
			t.Logf("stop took %v, err %v", took, err)
			// A margin for a busy machine: a retry would wait at least 15 s.
			if took >= 12*time.Second {
				t.Errorf("stop took %v: it did not end the retries at once", took)
			}
			ran, notRun := rs.check(t)
			if ran != 0 || notRun != c.queued {
				t.Errorf("ran %d, not run %d of %d", ran, notRun, c.queued)
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14FeederTasksOfAStopReachARetrier: the pool is idle when the
// stop begins, so an idle pool's stop would end the retries at once; but its
// feeder hands in its last tasks while it stops, and Drain must run them: the
// lone worker reopens at its third try.
func TestAttack14FeederTasksOfAStopReachARetrier(t *testing.T) {
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			f := newFix14()
			var fails atomic.Int32
			f.setFail(func(w W) bool { return w.Generation > 0 && fails.Add(1) <= 2 })
			p, app := app14(t, f, workerpool.Workers(1), workerpool.QueueSize(64), workerpool.RestartBackoff(50*time.Millisecond, 100*time.Millisecond))
			var rs reps14
			var submitErr atomic.Pointer[error]
			if err := p.AddFeeder(func(ctx context.Context) error {
				for range 10 {
					if _, err := rs.goReport(p, nil); err != nil {
						submitErr.Store(&err)
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			breakOne(t, p, f)
			ctx, cancel := context.WithTimeout(context.Background(), budget14)
			defer cancel()
			took, err := drainStop14(t, round%2 == 1, p, app, ctx)
			t.Logf("stop took %v, err %v", took, err)
			if ep := submitErr.Load(); ep != nil {
				t.Fatalf("the feeder's last tasks were refused while it stopped: %v", *ep)
			}
			if took >= drainDeadline14 {
				t.Errorf("stop took %v", took)
			}
			ran, notRun := rs.check(t)
			if ran != 10 || notRun != 0 {
				t.Errorf("Drain: the feeder's last 10 tasks, handed in while it stopped: ran %d, not run %d (the lone worker reopens at its third try)", ran, notRun)
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14ResizeGrownWorkersThatNeverOpen: Resize adds workers whose
// first open fails (long backoff); the stop must not wait for them.
func TestAttack14ResizeGrownWorkersThatNeverOpen(t *testing.T) {
	for _, queued := range []int{0, 30} {
		t.Run(fmt.Sprint(queued), func(t *testing.T) {
			f := newFix14()
			f.setFail(func(w W) bool { return w.ID > 0 })
			p, app := app14(t, f, workerpool.Workers(1), workerpool.QueueSize(64), workerpool.RestartBackoff(30*time.Second, 60*time.Second))
			if err := p.Resize(6); err != nil {
				t.Fatal(err)
			}
			atkPoll(t, "failed opens of the grown workers", 5*time.Second, func() bool { return f.failedOpens.Load() >= 5 })
			var rs reps14
			for range queued {
				if _, err := rs.goReport(p, func(context.Context, r14) error { time.Sleep(time.Millisecond); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), budget14)
			defer cancel()
			took, err := timedStop(t, "Pool.Stop", 30*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
			t.Logf("stop took %v, err %v", took, err)
			if took >= drainDeadline14 {
				t.Errorf("stop took %v: it waited for grown workers that never opened", took)
			}
			ran, notRun := rs.check(t)
			if ran != queued || notRun != 0 {
				t.Errorf("worker 0 is healthy: ran %d, not run %d of %d", ran, notRun, queued)
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14ElasticGrownWorkersThatNeverOpen: an elastic pool grows
// workers whose open fails (long backoff) while worker 0 is busy; the stop
// drains the queue on worker 0 and does not wait for the growers' retries.
func TestAttack14ElasticGrownWorkersThatNeverOpen(t *testing.T) {
	f := newFix14()
	f.setFail(func(w W) bool { return w.ID > 0 })
	p, app := app14(t, f, workerpool.Elastic(1, 5, 50*time.Millisecond), workerpool.QueueSize(64), workerpool.RestartBackoff(30*time.Second, 60*time.Second))
	var rs reps14
	for range 30 {
		if _, err := rs.goReport(p, func(context.Context, r14) error { time.Sleep(2 * time.Millisecond); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	atkPoll(t, "a grown worker's failed open", 5*time.Second, func() bool { return f.failedOpens.Load() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), budget14)
	defer cancel()
	took, err := timedStop(t, "Pool.Stop", 30*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
	t.Logf("stop took %v, err %v, failed opens %d", took, err, f.failedOpens.Load())
	if took >= drainDeadline14 {
		t.Errorf("stop took %v", took)
	}
	ran, notRun := rs.check(t)
	if ran != 30 || notRun != 0 {
		t.Errorf("ran %d, not run %d of 30", ran, notRun)
	}
	_ = app.Stop(context.Background())
	f.checkExactlyOnce(t)
	statsZero(t, p, 5*time.Second)
}

// TestAttack14RecycleWithFlakyReopensManyWorkers: many workers recycled by
// MaxTasksPerWorker, MaxWorkerAge, panics and ErrBroken, with reopens that
// fail half the time; Drain stops with budgets from 300 ms to 3 s; every
// task reported exactly once, every generation closed once, the stop within
// its budget.
func TestAttack14RecycleWithFlakyReopensManyWorkers(t *testing.T) {
	deadline := time.Now().Add(7 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline) && rounds < 40; rounds++ {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14))
		f := newFix14()
		pct := 30 + rng.IntN(50)
		f.setFail(func(w W) bool { return w.Generation > 0 && rand.IntN(100) < pct })
		workers := 1 + rng.IntN(32)
		opts := []workerpool.Option{workerpool.Workers(workers), workerpool.QueueSize(256),
			workerpool.RestartBackoff(time.Millisecond, 5*time.Millisecond)}
		aged := false
		switch rng.IntN(3) {
		case 0:
			opts = append(opts, workerpool.MaxTasksPerWorker(1+rng.IntN(3)))
		case 1:
			// a task held by an aged worker whose reopen fails is dropped
			// at once: TestAttack14HeldTaskOfARebuildingWorkerRunsUnderDrain
			aged = true
			opts = append(opts, workerpool.MaxWorkerAge(time.Duration(1+rng.IntN(3))*time.Millisecond))
		}
		p, app := app14(t, f, opts...)
		var rs reps14
		n := 50 + rng.IntN(150)
		for i := range n {
			k := rng.IntN(10)
			if _, err := rs.goReport(p, func(ctx context.Context, r r14) error {
				if r.Res == nil || r.Res.closed.Load() {
					t.Errorf("task got a closed or missing resource")
				}
				switch k {
				case 0:
					return fmt.Errorf("x: %w", resources.ErrBroken)
				case 1:
					panic("attack14")
				}
				return nil
			}); err != nil {
				t.Fatalf("task %d: %v", i, err)
			}
		}
		budget := time.Duration(300+rng.IntN(2700)) * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		took, err := timedStop(t, "Pool.Stop", budget+5*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
		cancel()
		if err != nil {
			t.Logf("round %d: stop: %v", rounds, err)
		}
		_ = took
		_, notRun := rs.check(t)
		if notRun > 0 && budget >= 2*time.Second && !aged {
			// reopens fail at most 80% of the time with a 5 ms backoff:
			// 800 ms of retries cannot all fail.
			t.Errorf("round %d: Drain with %v budget, %d workers: %d tasks not run", rounds, budget, workers, notRun)
		}
		_ = app.Stop(context.Background())
		f.checkExactlyOnce(t)
		statsZero(t, p, 5*time.Second)
		if t.Failed() {
			t.Fatalf("round %d failed: workers %d pct %d opts %v budget %v", rounds, workers, pct, opts, budget)
		}
	}
	t.Logf("%d rounds", rounds)
}
