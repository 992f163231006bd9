package workerpool_test

// Target 2: the stop of a failed pool calls its feeders' stop exactly once,
// first (before the stop closes any worker's resources), whatever races it.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

var errFeeder14 = errors.New("attack14: feeder stop error")

type feeders14 struct {
	seq    atomic.Int64
	calls  [4]atomic.Int32
	at     [4]atomic.Int64 // seq of each call
	closes sync.Map        // seq of closes after armed
	armed  atomic.Bool
	subErr atomic.Pointer[error]
}

func TestAttack14FailedPoolStopsItsFeedersOnceFirst(t *testing.T) {
	const (
		raceNone = iota
		racePoolApp
		raceTwoPools
		raceFailDuringFeeders
		races
	)
	for round := range 8 {
		race := round % races
		t.Run(fmt.Sprintf("%d-race%d", round, race), func(t *testing.T) {
			f := newFix14()
			f.setFail(func(w W) bool { return w.Generation > 0 })
			fs := &feeders14{}
			f.setClose(func(ctx context.Context, w W) error {
				if fs.armed.Load() {
					fs.closes.Store(fs.seq.Add(1), w)
				}
				return nil
			})
			p, app := app14(t, f, workerpool.Workers(3), workerpool.QueueSize(16),
				workerpool.MaxRestarts(1, time.Minute), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond))
			release := make(chan struct{})
			feederBlocked := make(chan struct{})
			// feeder 0: returns an error; 1: panics; 2: submits, then (in
			// the race-during-feeders case) blocks until released; 3: blocks
			// until its context ends.
			for i := range 4 {
				i := i
				if err := p.AddFeeder(func(ctx context.Context) error {
					fs.calls[i].Add(1)
					fs.at[i].Store(fs.seq.Add(1))
					switch i {
					case 0:
						return errFeeder14
					case 1:
						panic("attack14 feeder panic")
					case 2:
						err := p.Go(context.Background(), func(context.Context, r14) error { return nil })
						fs.subErr.Store(&err)
						if race == raceFailDuringFeeders {
							close(feederBlocked)
							<-release
						}
						return nil
					default:
						<-ctx.Done()
						return ctx.Err()
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			failed := func() bool {
				return f.sawEvent(func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolFailed); return ok })
			}
			breakIt := func() {
				_ = p.Do(context.Background(), func(ctx context.Context, r r14) error {
					return fmt.Errorf("attack14: %w", resources.ErrBroken)
				})
			}
			if race != raceFailDuringFeeders {
				breakIt()
				atkPoll(t, "PoolFailed", 5*time.Second, failed)
			}
			fs.armed.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			wg.Add(1)
			go func() { defer wg.Done(); errs[0] = p.Stop(ctx, workerpool.Drain) }()
			switch race {
			case racePoolApp:
				wg.Add(1)
				go func() { defer wg.Done(); errs[1] = app.Stop(ctx) }()
			case raceTwoPools:
				wg.Add(1)
				go func() { defer wg.Done(); errs[1] = p.Stop(ctx, workerpool.Cancel) }()
			case raceFailDuringFeeders:
				<-feederBlocked
				fs.armed.Store(false) // the broken worker's own close is not the stop's
				breakIt()             // the pool is stopping: the task is still taken
				atkPoll(t, "PoolFailed during the feeders' stop", 5*time.Second, func() bool {
					return failed() || f.failedOpens.Load() >= 2
				})
				fs.armed.Store(true)
				wg.Add(1)
				go func() { defer wg.Done(); errs[1] = app.Stop(ctx) }()
				time.Sleep(20 * time.Millisecond)
				close(release)
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			atkWait(t, "the stops", 10*time.Second, done)
			for i := range 4 {
				if n := fs.calls[i].Load(); n != 1 {
					t.Errorf("feeder %d: stop called %d times", i, n)
				}
			}
			for i := 1; i < 4; i++ {
				if fs.at[i].Load() < fs.at[i-1].Load() {
					t.Errorf("feeder %d stopped before feeder %d", i, i-1)
				}
			}
			last := fs.at[3].Load()
			fs.closes.Range(func(k, v any) bool {
				if k.(int64) < last {
					t.Errorf("worker %d closed before the last feeder's stop was called", v.(W).ID)
				}
				return true
			})
			for i, err := range errs[:1+min(race, 1)] {
				if err == nil {
					t.Errorf("stop %d: nil, want the feeders' error and panic joined", i)
					continue
				}
				if !errors.Is(err, errFeeder14) {
					t.Errorf("stop %d: %v: no feeder error", i, err)
				}
				if !strings.Contains(err.Error(), "attack14 feeder panic") {
					t.Errorf("stop %d: %v: no feeder panic", i, err)
				}
			}
			if race != raceNone && errs[0] != nil && errs[1] != nil && errs[0].Error() != errs[1].Error() {
				t.Errorf("two stops, two results:\n%v\n---\n%v", errs[0], errs[1])
			}
			again := p.Stop(context.Background(), workerpool.Drain)
			if errString(again) != errString(errs[0]) {
				t.Errorf("a later Stop returned %v, the first %v", again, errs[0])
			}
			cancel()
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
			statsZero(t, p, 5*time.Second)
		})
	}
}

// TestAttack14AddFeederToAFailedPool: a feeder added after the pool failed
// (before any stop) is either refused or stopped exactly once by the stop.
func TestAttack14AddFeederToAFailedPool(t *testing.T) {
	f := newFix14()
	f.setFail(func(w W) bool { return w.Generation > 0 })
	p, app := app14(t, f, workerpool.Workers(2), workerpool.MaxRestarts(1, time.Minute), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond))
	_ = p.Do(context.Background(), func(ctx context.Context, r r14) error {
		return fmt.Errorf("attack14: %w", resources.ErrBroken)
	})
	atkPoll(t, "PoolFailed", 5*time.Second, func() bool {
		return f.sawEvent(func(e workerpool.Event) bool { _, ok := e.(workerpool.PoolFailed); return ok })
	})
	var calls atomic.Int32
	addErr := p.AddFeeder(func(ctx context.Context) error { calls.Add(1); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = app.Stop(ctx)
	want := int32(1)
	if addErr != nil {
		want = 0
	}
	if calls.Load() != want {
		t.Errorf("AddFeeder on a failed pool returned %v; its stop was called %d times", addErr, calls.Load())
	}
	f.checkExactlyOnce(t)
	statsZero(t, p, 5*time.Second)
}
