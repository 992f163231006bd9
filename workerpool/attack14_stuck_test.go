package workerpool_test

// Target 3: the stop's one shared wait for running workers, and its reports
// of stuck workers.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// TestAttack14HungCleanupStops: one worker's cleanup ignores its context
// until released. Every kind of stop (one Pool.Stop, Pool.Stop racing
// app.Stop, two Pool.Stops with different budgets) returns by its deadline
// with an error naming the stuck worker's resource; after the release the
// worker closes exactly once, Stats go to zero, and a later Stop returns the
// first's result.
func TestAttack14HungCleanupStops(t *testing.T) {
	for round := range 6 {
		kind := round % 3
		t.Run(fmt.Sprintf("%d-kind%d", round, kind), func(t *testing.T) {
			f := newFix14()
			release := make(chan struct{})
			var hung atomic.Int32
			hung.Store(-1)
			f.setClose(func(ctx context.Context, w W) error {
				if w.ID == 1 {
					hung.Store(int32(w.ID))
					<-release
				}
				return nil
			})
			p, app := app14(t, f, workerpool.Workers(4), workerpool.QueueSize(16))
			var rs reps14
			for range 20 {
				if _, err := rs.goReport(p, nil); err != nil {
					t.Fatal(err)
				}
			}
			budget := 600 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			took := make([]time.Duration, 2)
			start := time.Now()
			wg.Add(1)
			go func() { defer wg.Done(); errs[0] = p.Stop(ctx, workerpool.Drain); took[0] = time.Since(start) }()
			switch kind {
			case 1:
				wg.Add(1)
				go func() { defer wg.Done(); errs[1] = app.Stop(ctx); took[1] = time.Since(start) }()
			case 2:
				ctx2, cancel2 := context.WithTimeout(context.Background(), budget/2)
				defer cancel2()
				wg.Add(1)
				go func() { defer wg.Done(); errs[1] = p.Stop(ctx2, workerpool.Cancel); took[1] = time.Since(start) }()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(budget + 5*time.Second):
				t.Errorf("the stops did not return within their budget + 5 s")
				close(release)
				<-done
				return
			}
			for i := range 1 + min(kind, 1) {
				t.Logf("stop %d took %v: %v", i, took[i], errs[i])
				if errs[i] == nil {
					t.Errorf("stop %d returned nil though worker 1's cleanup hangs", i)
				} else if !strings.Contains(errs[i].Error(), "res14") {
					t.Errorf("stop %d: %v: does not name the stuck cleanup res14", i, errs[i])
				}
			}
			// a stop after the first returned, while the worker is still stuck
			ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
			took3, err3 := timedStop(t, "a stop while the worker is still stuck", 5*time.Second, func() error { return p.Stop(ctx3, workerpool.Drain) })
			cancel3()
			t.Logf("stop while still stuck took %v: %v", took3, err3)
			if err3 == nil {
				t.Errorf("a stop while worker 1 is still stuck returned nil")
			}
			close(release)
			atkPoll(t, "the stuck worker closes", 5*time.Second, func() bool {
				o, c := f.openCounts()
				return o == c
			})
			statsZero(t, p, 5*time.Second)
			rs.check(t)
			again := p.Stop(context.Background(), workerpool.Drain)
			// the first stop is whichever of the racing stops began first
			if errString(again) != errString(errs[0]) && (kind == 0 || errString(again) != errString(errs[1])) {
				t.Errorf("a later Stop returned %v, the racing stops %v and %v", again, errs[0], errs[1])
			}
			_ = app.Stop(context.Background())
			f.checkExactlyOnce(t)
		})
	}
}

// TestAttack14StopRacesResizeElasticGoexit: stops of every kind racing
// Resize (growing and shrinking), elastic retirements and tasks that call
// runtime.Goexit or hang until their context ends; some cleanups hang
// briefly past the budget. Every generation closes exactly once, every task
// is reported once, the stop returns by its budget (+ margin), Stats end at
// zero.
func TestAttack14StopRacesResizeElasticGoexit(t *testing.T) {
	deadline := time.Now().Add(7 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline) && rounds < 200; rounds++ {
		seed := uint64(time.Now().UnixNano())
		rng := rand.New(rand.NewPCG(seed, 3))
		f := newFix14()
		release := make(chan struct{})
		hangPct := 0
		if rng.IntN(3) == 0 {
			hangPct = 20
		}
		f.setClose(func(ctx context.Context, w W) error {
			if hangPct > 0 && rand.IntN(100) < hangPct {
				<-release
			}
			return nil
		})
		elastic := rng.IntN(3) == 0
		var opts []workerpool.Option
		if elastic {
			opts = append(opts, workerpool.Elastic(rng.IntN(2), 2+rng.IntN(6), time.Duration(100+rng.IntN(900))*time.Microsecond), workerpool.QueueSize(1+rng.IntN(8)))
		} else {
			opts = append(opts, workerpool.Workers(1+rng.IntN(8)), workerpool.QueueSize(rng.IntN(8)))
		}
		p, app := app14(t, f, opts...)
		var rs reps14
		stopCh := make(chan struct{})
		var wg sync.WaitGroup
		for s := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(s)))
				for i := 0; i < 60; i++ {
					k := r.IntN(8)
					_, err := rs.goReport(p, func(ctx context.Context, res r14) error {
						if res.Res == nil || res.Res.closed.Load() {
							t.Errorf("task got a closed resource")
						}
						switch k {
						case 0:
							runtime.Goexit()
						case 1:
							<-ctx.Done()
						case 2:
							return fmt.Errorf("x: %w", resources.ErrBroken)
						}
						return nil
					})
					if err != nil {
						return
					}
					if r.IntN(10) == 0 {
						runtime.Gosched()
					}
				}
			}()
		}
		if !elastic {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, 77))
				for i := 0; i < 10; i++ {
					select {
					case <-stopCh:
						return
					default:
					}
					_ = p.Resize(1 + r.IntN(8))
					time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
				}
			}()
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		budget := time.Duration(100+rng.IntN(400)) * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		pol := workerpool.StopPolicy(rng.IntN(3))
		var swg sync.WaitGroup
		var errs [2]error
		swg.Add(2)
		go func() { defer swg.Done(); errs[0] = p.Stop(ctx, pol) }()
		go func() {
			defer swg.Done()
			switch rng.IntN(3) {
			case 0:
				errs[1] = app.Stop(ctx)
			case 1:
				errs[1] = p.Stop(ctx, workerpool.StopPolicy(rng.IntN(3)))
			}
		}()
		sdone := make(chan struct{})
		go func() { swg.Wait(); close(sdone) }()
		select {
		case <-sdone:
		case <-time.After(budget + 5*time.Second):
			t.Errorf("round %d (seed %#x): the stops did not return within budget %v + 5 s", rounds, seed, budget)
		}
		close(stopCh)
		close(release)
		<-sdone
		wg.Wait()
		if !rs.waitReports(5 * time.Second) {
			t.Errorf("round %d (seed %#x): a task was never reported", rounds, seed)
		}
		rs.check(t)
		atkPoll(t, "every generation closed", 5*time.Second, func() bool { o, c := f.openCounts(); return o == c })
		statsZero(t, p, 5*time.Second)
		_ = app.Stop(context.Background())
		cancel()
		f.checkExactlyOnce(t)
		if t.Failed() {
			t.Fatalf("round %d (seed %#x) elastic=%v opts=%v budget=%v policy=%v hang=%d", rounds, seed, elastic, opts, budget, pol, hangPct)
		}
	}
	t.Logf("%d rounds", rounds)
}

// TestAttack14IdleAppsComeAndGo: many separate apps, each with idle
// workers that sleep a while, then serve, then stop; goroutines return to
// their baseline.
func TestAttack14IdleAppsComeAndGo(t *testing.T) {
	base := runtime.NumGoroutine()
	for cycle := range 60 {
		f := newFix14()
		opts := []workerpool.Option{workerpool.Workers(1 + cycle%64)}
		if cycle%4 == 1 {
			opts = []workerpool.Option{workerpool.Elastic(1, 8, 5*time.Millisecond)}
		}
		if cycle%5 == 2 {
			opts = append(opts, workerpool.CheckIdle(time.Millisecond))
		}
		p, app := app14(t, f, opts...)
		if cycle%10 == 0 {
			time.Sleep(300 * time.Millisecond) // long idleness
		}
		var n atomic.Int32
		for range 50 {
			if err := p.Go(context.Background(), func(ctx context.Context, r r14) error {
				if r.Res == nil || r.Res.closed.Load() {
					t.Errorf("closed resource")
				}
				n.Add(1)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := app.Stop(ctx); err != nil {
			t.Errorf("cycle %d: stop: %v", cycle, err)
		}
		cancel()
		if n.Load() != 50 {
			t.Errorf("cycle %d: %d of 50 ran", cycle, n.Load())
		}
		f.checkExactlyOnce(t)
		statsZero(t, p, time.Second)
	}
	atkPoll(t, "goroutines back to baseline", 5*time.Second, func() bool { return runtime.NumGoroutine() <= base })
}
