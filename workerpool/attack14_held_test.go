package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// TestAttack14HeldTaskOfARebuildingWorkerRunsUnderDrain: a worker takes a
// task, must rebuild before running it (MaxWorkerAge, or a failed health
// check after CheckIdle), and its reopen fails once. A Drain stop with a
// 25 s budget begins: the worker should go on retrying (the task was
// accepted and has not started: Drain runs it during the first two fifths)
// and the reopen's second try succeeds 50–100 ms later.
//
// BUG (fails every run: 10 of 10, and 3 of 3 with three copies in parallel): the stop returns in under a millisecond and the
// task is reported NotRun with ErrClosed: the retries end at once because
// the queue is empty, the held task not counting as queued.
func TestAttack14HeldTaskOfARebuildingWorkerRunsUnderDrain(t *testing.T) {
	for _, how := range []string{"MaxWorkerAge", "CheckIdle"} {
		t.Run(how, func(t *testing.T) {
			f := newFix14()
			var failing atomic.Bool
			var fails atomic.Int32
			f.setFail(func(w W) bool { return failing.Load() && fails.Add(1) <= 1 })
			var checkFails atomic.Bool
			opts := []workerpool.Option{workerpool.Workers(1), workerpool.QueueSize(64),
				workerpool.RestartBackoff(50*time.Millisecond, 100*time.Millisecond)}
			if how == "MaxWorkerAge" {
				opts = append(opts, workerpool.MaxWorkerAge(50*time.Millisecond))
			} else {
				opts = append(opts, workerpool.CheckIdle(20*time.Millisecond))
				chk := func(ctx context.Context, r *res14) error {
					if checkFails.Load() {
						return errors.New("attack14: check failed")
					}
					return nil
				}
				f.check.Store(&chk)
			}
			p, app := app14(t, f, opts...)
			time.Sleep(150 * time.Millisecond) // older than 50 ms; idle longer than 20 ms
			failing.Store(true)
			checkFails.Store(true)
			var rs reps14
			if _, err := rs.goReport(p, nil); err != nil {
				t.Fatal(err)
			}
			atkPoll(t, "the failed reopen", 5*time.Second, func() bool { return f.failedOpens.Load() >= 1 })
			checkFails.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), budget14)
			defer cancel()
			took, err := timedStop(t, "Pool.Stop", 30*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
			t.Logf("stop took %v, err %v, failed opens %d", took, err, f.failedOpens.Load())
			ran, notRun := rs.check(t)
			if ran != 1 || notRun != 0 {
				t.Errorf("Drain, 25 s budget: the task held by the rebuilding worker was not run (ran %d, not run %d); its reopen's next try would have succeeded within 100 ms", ran, notRun)
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14MaxRestartsDuringADrainStop: a worker broke and its reopens
// always fail; outside a stop the pool fails after MaxRestarts(6) tries
// (checked first). Under a Drain stop with tasks queued (a healthy worker is
// held busy), the retries go on until two fifths of the budget: they must
// still count toward MaxRestarts.
//
// BUG (fails 10 of 10 runs): during the stop, about 90 failed reopens in 2 s
// and no PoolFailed: the stop retries a hopeless open until its drain
// deadline, and the app is not told the pool failed.
func TestAttack14MaxRestartsDuringADrainStop(t *testing.T) {
	mk := func(t *testing.T) (*fix14, *workerpool.Pool[r14], func()) {
		f := newFix14()
		f.setFail(func(w W) bool { return w.Generation > 0 })
		p, app := app14(t, f, workerpool.Workers(2), workerpool.QueueSize(64),
			workerpool.MaxRestarts(6, time.Minute),
			// Six pauses of 75–150 ms: the stop below begins long before the
			// pool could fail, and the drain's 2 s are enough for it to.
			workerpool.RestartBackoff(150*time.Millisecond, 150*time.Millisecond))
		return f, p, func() { _ = app.Stop(context.Background()); f.checkExactlyOnce(t) }
	}
	failed := func(f *fix14) bool {
		return f.sawEvent(func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolFailed); return ok })
	}
	t.Run("outside-a-stop", func(t *testing.T) {
		f, p, done := mk(t)
		defer done()
		breakOne(t, p, f)
		atkPoll(t, "PoolFailed after MaxRestarts", 5*time.Second, func() bool { return failed(f) })
	})
	t.Run("during-a-drain-stop", func(t *testing.T) {
		f, p, done := mk(t)
		defer done()
		gate := make(chan struct{})
		defer close(gate)
		started := make(chan struct{})
		var held rep14
		if err := p.GoReport(context.Background(), func(ctx context.Context, r r14) error {
			close(started)
			select {
			case <-gate:
			case <-ctx.Done():
			}
			return nil
		}, func(o workerpool.Outcome, err error) { held.reports.Add(1) }); err != nil {
			t.Fatal(err)
		}
		<-started
		// break the other worker: the held one cannot take the task
		err := p.Do(context.Background(), func(ctx context.Context, r r14) error {
			return fmt.Errorf("attack14: %w", resources.ErrBroken)
		})
		if err == nil {
			t.Fatal("broken task: nil")
		}
		atkPoll(t, "a failed reopen", 5*time.Second, func() bool { return f.failedOpens.Load() >= 1 })
		if failed(f) {
			t.Skip("failed before the stop")
		}
		var rs reps14
		for range 10 {
			if _, err := rs.goReport(p, nil); err != nil {
				t.Fatal(err)
			}
		}
		before := f.failedOpens.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		took, err := timedStop(t, "Pool.Stop", 15*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
		during := f.failedOpens.Load() - before
		t.Logf("stop took %v, err %v, failed reopens during it %d", took, err, during)
		if during > 6 && !failed(f) {
			t.Errorf("%d failed reopens during a Drain stop, MaxRestarts(6, 1m), yet the pool never failed", during)
		}
		rs.check(t)
		if held.reports.Load() != 1 {
			t.Errorf("held task reported %d times", held.reports.Load())
		}
		statsZero(t, p, 5*time.Second)
	})
}

// TestAttack14StatsOfARetryingWorker: a worker whose reopen failed and that
// waits to retry has no resources open: Stats.Workers ("workers whose
// resources are open and that take tasks") must not count it; it is
// rebuilding (Stats.Opening).
func TestAttack14StatsOfARetryingWorker(t *testing.T) {
	f := newFix14()
	f.setFail(func(w W) bool { return w.Generation > 0 })
	p, app := app14(t, f, workerpool.Workers(2), workerpool.RestartBackoff(30*time.Second, 60*time.Second))
	defer func() { _ = app.Stop(context.Background()); f.checkExactlyOnce(t) }()
	breakOne(t, p, f)
	time.Sleep(20 * time.Millisecond)
	st := p.Stats()
	t.Logf("stats while worker retries: %+v", st)
	if st.Workers+st.Opening > 2 || st.Workers != 1 {
		t.Errorf("one worker serving, one waiting to retry its failed open: Stats %+v, want Workers 1", st)
	}
}

// TestAttack14StatsOfAFailedPool: after MaxRestarts the broken worker gave up
// its retries; it has no resources open, so Stats.Workers must not count it.
//
// BUG (fails every run, 3 of 3 with -count=3): Stats reports Workers 2,
// Opening 0, while one generation is open; while the pool served, the same
// worker counted as Opening 1, Workers 1 (TestAttack14StatsOfARetryingWorker).
func TestAttack14StatsOfAFailedPool(t *testing.T) {
	f := newFix14()
	f.setFail(func(w W) bool { return w.Generation > 0 })
	p, app := app14(t, f, workerpool.Workers(2), workerpool.MaxRestarts(2, time.Minute), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond))
	defer func() { _ = app.Stop(context.Background()); f.checkExactlyOnce(t) }()
	breakOne(t, p, f)
	atkPoll(t, "PoolFailed", 5*time.Second, func() bool {
		return f.sawEvent(func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolFailed); return ok })
	})
	time.Sleep(50 * time.Millisecond)
	st := p.Stats()
	o, c := f.openCounts()
	t.Logf("stats of the failed pool: %+v; generations open %d", st, o-c)
	if st.Workers > o-c {
		t.Errorf("Stats.Workers = %d, but only %d workers have resources open", st.Workers, o-c)
	}
}
