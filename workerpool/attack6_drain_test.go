package workerpool_test

// Round 6: Drain and Stats under a stop racing submitters. Both tests
// failed before their fixes: a submission admitted as the stop began was
// queued behind the pills and dropped, and a Map task that found its
// context ended counted as run and failed.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// Drain: "runs the queued tasks before the workers close, as long as the first
// two fifths of the stop budget last"; README: "with Drain every queued task
// runs". Submitters race Stop(Drain) with a 25 s budget and trivial tasks:
// every task Go accepted must run, none may reach OnDropped or the
// ErrorHandler (ErrClosed) — the budget is nowhere near spent.
func TestAttack6DrainRunsEveryAcceptedTask(t *testing.T) {
	deadline := time.Now().Add(12 * time.Second)
	var rounds, bad int
	for round := 0; round < 400 && time.Now().Before(deadline); round++ {
		rounds++
		q := []int{0, 1, 3, 8}[round%4]
		var dropped, closedErr, droppedPre atomic.Int64
		var stopCalled atomic.Bool
		var preMu sync.Mutex
		pre := map[int]bool{} // Go returned nil before Stop was called
		p, app := atkStart[W](t, "a6drain", workerpool.Workers(1+round%2), workerpool.QueueSize(q),
			workerpool.OnDropped[W](func(ctx context.Context, _ func(context.Context, W) error) {
				dropped.Add(1)
				preMu.Lock()
				if pre[ctx.Value(a6IDKey{}).(int)] {
					droppedPre.Add(1)
				}
				preMu.Unlock()
			}),
			workerpool.ErrorHandler(func(err error) {
				if errors.Is(err, workerpool.ErrClosed) {
					closedErr.Add(1)
				}
			}))
		var ran, accepted atomic.Int64
		var wg sync.WaitGroup
		started := make(chan struct{})
		var startOnce sync.Once
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					if i == 20 {
						startOnce.Do(func() { close(started) })
					}
					id := s*1000000 + i
					ctx := context.WithValue(context.Background(), a6IDKey{}, id)
					if err := p.Go(ctx, func(context.Context, W) error { ran.Add(1); return nil }); err != nil {
						if !errors.Is(err, workerpool.ErrClosed) {
							t.Errorf("Go: %v", err)
						}
						return
					}
					accepted.Add(1)
					if !stopCalled.Load() {
						preMu.Lock()
						pre[id] = true
						preMu.Unlock()
					}
				}
			}()
		}
		atkWait(t, "submitters under way", 20*time.Second, started)
		stopCalled.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		t0 := time.Now()
		err := p.Stop(ctx, workerpool.Drain)
		took := time.Since(t0)
		cancel()
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		if dropped.Load() != 0 || ran.Load() != accepted.Load() {
			bad++
			if bad <= 3 {
				t.Errorf("round %d (QueueSize %d): Stop(Drain, 25s) returned after %v having dropped %d accepted tasks (%d of them accepted before Stop was called; ErrorHandler ErrClosed %d); accepted %d, ran %d; Stats %+v",
					round, q, took.Round(time.Millisecond), dropped.Load(), droppedPre.Load(), closedErr.Load(), accepted.Load(), ran.Load(), p.Stats())
			}
		}
		_ = app
	}
	if bad > 0 {
		t.Errorf("%d of %d rounds dropped accepted tasks under Drain", bad, rounds)
	}
}

// Stats.Done "counts the tasks that ran"; Dropped "the accepted tasks that
// never ran". Map's f is the task: a value whose f never ran must not count
// as Done (nor as Failed: "the tasks that returned an error").
func TestAttack6MapTaskThatNeverRanIsDropped(t *testing.T) {
	deadline := time.Now().Add(12 * time.Second)
	var rounds, bad int
	for round := 0; round < 300 && time.Now().Before(deadline); round++ {
		rounds++
		p, _ := atkStart[W](t, "a6mapstats", workerpool.Workers(2), workerpool.QueueSize(1+round%4))
		var calls atomic.Int64
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					seq := iter.Seq[int](func(yield func(int) bool) {
						for i := range 8 {
							if !yield(i) {
								return
							}
						}
					})
					stop := false
					for _, err := range workerpool.Map(context.Background(), p, seq, func(ctx context.Context, _ W, x int) (int, error) {
						calls.Add(1)
						return x, nil
					}, workerpool.InFlight(4)) {
						if err != nil {
							stop = true
						}
					}
					if stop {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		err := p.Stop(ctx, workerpool.Cancel)
		cancel()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}

		s := p.Stats()
		if s.Done != uint64(calls.Load()) || s.Failed != 0 {
			bad++
			if bad <= 3 {
				t.Errorf("round %d: f was called %d times; Stats.Done %d, Failed %d, Dropped %d", round, calls.Load(), s.Done, s.Failed, s.Dropped)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rounds: Stats counted a Map task as done (and failed) whose f never ran", bad, rounds)
	}
	_ = fmt.Sprint()
}
