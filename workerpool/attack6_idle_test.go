package workerpool_test

// Round 6: parked workers and submitters. Idle workers must not spin (they
// yield briefly, then park); any GOMAXPROCS and any worker count must serve;
// a stop must wake what is parked.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func a6CPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// a6IdleCPU measures the process's CPU time over 200ms of sleeping; retried
// (a hang/spin detector, not a timing test: a spinning pool fails every try).
func a6IdleCPU(t *testing.T, what string) {
	t.Helper()
	var best time.Duration
	for try := range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		before := a6CPU(t)
		time.Sleep(200 * time.Millisecond)
		used := a6CPU(t) - before
		if try == 0 || used < best {
			best = used
		}
		if used < 50*time.Millisecond {
			return
		}
	}
	t.Errorf("%s: the idle process used %v of CPU over 200ms (best of 3)", what, best)
}

func TestAttack6_IdleWorkersDoNotSpin(t *testing.T) {
	for _, procs := range []int{1, 2} {
		for _, q := range []int{0, 8} {
			t.Run(fmt.Sprintf("procs%d_q%d", procs, q), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				p, _ := atkStart[W](t, "a6idle", workerpool.Workers(64), workerpool.QueueSize(q))
				atkPoll(t, "64 workers", 20*time.Second, func() bool { return p.Stats().Workers == 64 })
				a6IdleCPU(t, "64 workers never given a task")
				// A burst, then idleness again: every worker went through its
				// yield-then-park path.
				var wg sync.WaitGroup
				for range 640 {
					wg.Add(1)
					if err := p.Go(context.Background(), func(context.Context, W) error { wg.Done(); return nil }); err != nil {
						t.Fatal(err)
					}
				}
				wg.Wait()
				atkPoll(t, "workers idle", 20*time.Second, func() bool { return p.Stats().Busy == 0 })
				a6IdleCPU(t, "64 workers idle after a burst")
			})
		}
	}
}

// Submitters parked on a full queue must not spin either.
func TestAttack6_ParkedSubmittersDoNotSpin(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("procs%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			p, _ := atkStart[W](t, "a6parksub", workerpool.Workers(2), workerpool.QueueSize(3))
			b := a6Block(t, p, 2)
			var ran atomic.Int64
			for range 3 {
				if !p.TryGo(func(context.Context, W) error { ran.Add(1); return nil }) {
					t.Fatal("TryGo refused with room")
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- p.Go(context.Background(), func(context.Context, W) error { ran.Add(1); return nil })
				}()
			}
			time.Sleep(50 * time.Millisecond)
			a6IdleCPU(t, "16 submitters parked on a full queue")
			b.releaseAll()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			atkPoll(t, "every task runs", 20*time.Second, func() bool { return ran.Load() == 19 })
		})
	}
}

// Workers(1)..Workers(200), GOMAXPROCS 1 and 2, with and without
// LockOSThread: every task of every API runs exactly once, and the pool stops.
func TestAttack6_WorkerCountsAndProcs(t *testing.T) {
	for _, procs := range []int{1, 2} {
		for _, workers := range []int{1, 2, 3, 17, 64, 200} {
			for _, lock := range []bool{false, true} {
				if lock && workers > 64 {
					continue
				}
				t.Run(fmt.Sprintf("procs%d_w%d_lock%v", procs, workers, lock), func(t *testing.T) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
					opts := []workerpool.Option{workerpool.Workers(workers), workerpool.QueueSize(workers % 5)}
					if lock {
						opts = append(opts, workerpool.LockOSThread())
					}
					p, _ := atkStart[W](t, "a6procs", opts...)
					const n = 400
					var counts [n]atomic.Int32
					var wg sync.WaitGroup
					for s := range 4 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := s; i < n; i += 4 {
								task := func(context.Context, W) error { counts[i].Add(1); return nil }
								var err error
								switch i % 4 {
								case 0:
									err = p.Go(context.Background(), task)
								case 1:
									err = p.Do(context.Background(), task)
								case 2:
									for !p.TryGo(task) {
										runtime.Gosched()
									}
								case 3:
									var f *workerpool.Future[int]
									f, err = workerpool.Submit(context.Background(), p, func(ctx context.Context, w W) (int, error) { return i, task(ctx, w) })
									if err == nil {
										var v int
										v, err = f.Wait(context.Background())
										if err == nil && v != i {
											err = fmt.Errorf("future %d returned %d", i, v)
										}
									}
								}
								if err != nil {
									t.Error(err)
									return
								}
							}
						}()
					}
					done := make(chan struct{})
					go func() { wg.Wait(); close(done) }()
					atkWait(t, "submissions", 20*time.Second, done)
					if err := a6Stop(t, p, workerpool.Drain); err != nil {
						t.Fatal(err)
					}
					for i := range counts {
						if c := counts[i].Load(); c != 1 {
							t.Errorf("task %d ran %d times", i, c)
						}
					}
					if s := p.Stats(); s.Done != n || s.Dropped != 0 {
						t.Errorf("Stats after Drain: %+v", s)
					}
				})
			}
		}
	}
}

// A stop with every worker parked on an empty queue returns at once (it does
// not wait out any part of its budget), under every policy.
func TestAttack6_StopWakesParkedWorkers(t *testing.T) {
	for _, pol := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued} {
		for _, workers := range []int{1, 8, 64} {
			t.Run(fmt.Sprintf("%v_w%d", pol, workers), func(t *testing.T) {
				p, _ := atkStart[W](t, "a6stopidle", workerpool.Workers(workers), workerpool.QueueSize(workers))
				var wg sync.WaitGroup
				for range workers * 3 {
					wg.Add(1)
					_ = p.Go(context.Background(), func(context.Context, W) error { wg.Done(); return nil })
				}
				wg.Wait()
				atkPoll(t, "idle", 20*time.Second, func() bool { return p.Stats().Busy == 0 })
				time.Sleep(10 * time.Millisecond) // parked, surely
				// No deadline: "A stop without a deadline waits for everything";
				// nothing is left, so it must return.
				done := make(chan error, 1)
				go func() { done <- p.Stop(context.Background(), pol) }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("hang: Stop(Background) of an idle pool")
				}
				if s := p.Stats(); s.Workers != 0 || s.Done != uint64(workers*3) {
					t.Fatalf("Stats after stop: %+v", s)
				}
			})
		}
	}
}

// A stop with submitters parked on a full queue: they return ErrClosed and
// their tasks never run; queued tasks are run (Drain) or reported (Cancel,
// DropQueued); nothing is left behind.
func TestAttack6_StopWithParkedSubmitters(t *testing.T) {
	for _, pol := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued} {
		for _, q := range []int{0, 1, 5} {
			t.Run(fmt.Sprintf("%v_q%d", pol, q), func(t *testing.T) {
				var dropped, closedErrs atomic.Int64
				p, _ := atkStart[W](t, "a6stopsub", workerpool.Workers(2), workerpool.QueueSize(q),
					workerpool.OnDropped[W](func(context.Context, func(context.Context, W) error) { dropped.Add(1) }),
					workerpool.ErrorHandler(func(err error) {
						if errors.Is(err, workerpool.ErrClosed) {
							closedErrs.Add(1)
						}
					}))
				// Workers blocked until their context ends (Cancel) or released.
				rel := make(chan struct{})
				var started sync.WaitGroup
				started.Add(2)
				for range 2 {
					if err := p.Go(context.Background(), func(ctx context.Context, _ W) error {
						started.Done()
						select {
						case <-rel:
						case <-ctx.Done():
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				started.Wait()
				var queuedRan, lateRan atomic.Int64
				for range q {
					if !p.TryGo(func(context.Context, W) error { queuedRan.Add(1); return nil }) {
						t.Fatal("TryGo refused with room")
					}
				}
				const parked = 12
				var wg sync.WaitGroup
				results := make(chan error, parked*2)
				for i := range parked * 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						task := func(context.Context, W) error { lateRan.Add(1); return nil }
						if i%2 == 0 {
							results <- p.Go(context.Background(), task)
						} else {
							results <- p.Do(context.Background(), task)
						}
					}()
				}
				time.Sleep(30 * time.Millisecond)
				stopDone := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					stopDone <- p.Stop(ctx, pol)
				}()
				wdone := make(chan struct{})
				go func() { wg.Wait(); close(wdone) }()
				atkWait(t, "parked submitters return after Stop", 20*time.Second, wdone)
				close(results)
				for err := range results {
					if !errors.Is(err, workerpool.ErrClosed) {
						t.Errorf("parked submitter got %v, want ErrClosed", err)
					}
				}
				close(rel)
				select {
				case err := <-stopDone:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(25 * time.Second):
					t.Fatal("hang: Stop")
				}
				if lateRan.Load() != 0 {
					t.Errorf("%d refused tasks ran", lateRan.Load())
				}
				switch pol {
				case workerpool.Drain:
					if queuedRan.Load() != int64(q) || dropped.Load() != 0 {
						t.Errorf("Drain: %d of %d queued ran, %d dropped", queuedRan.Load(), q, dropped.Load())
					}
				default:
					if queuedRan.Load() != 0 || dropped.Load() != int64(q) || closedErrs.Load() != int64(q) {
						t.Errorf("%v: %d of %d queued ran, OnDropped %d, ErrorHandler ErrClosed %d", pol, queuedRan.Load(), q, dropped.Load(), closedErrs.Load())
					}
				}
				s := p.Stats()
				if s.Done+s.Dropped != uint64(2+q) {
					t.Errorf("Stats: Done %d + Dropped %d != accepted %d", s.Done, s.Dropped, 2+q)
				}
			})
		}
	}
}
