package workerpool_test

// Round 4 of adversarial tests: Stats.Done and Stats.Busy, now published by
// each worker in one word. Every promise of their documentation is checked
// without timing verdicts: deadlines are hang guards only.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

const a4Hang = 20 * time.Second

type a4Key struct{}

// a4Kind makes a task of one behaviour: 0 succeeds, 1 fails, 2 panics,
// 3 calls runtime.Goexit, 4 returns resources.ErrBroken.
func a4Kind(kind int, ran *atomic.Int64) func(context.Context, W) error {
	return func(context.Context, W) error {
		ran.Add(1)
		switch kind {
		case 1:
			return errors.New("fails")
		case 2:
			panic("boom")
		case 3:
			runtime.Goexit()
		case 4:
			return fmt.Errorf("conn: %w", resources.ErrBroken)
		}
		return nil
	}
}

// TestAttack4DoneCountsBeforeTheSubmitterHears: "A task that has a
// submitter to tell (Do, Submit, GoReport, groups, Map) counts before its
// submitter hears", whatever its outcome (a panic, a Goexit and ErrBroken
// rebuild the worker after it), and with tasks of Go running in a row on
// the same workers, which count by the 64.
func TestAttack4DoneCountsBeforeTheSubmitterHears(t *testing.T) {
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			p, _ := atkStart[W](t, fmt.Sprintf("a4done%d", workers), workerpool.Workers(workers),
				workerpool.QueueSize(4), workerpool.MaxTasksPerWorker(7),
				workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
				workerpool.ErrorHandler(func(error) {}))
			var ran atomic.Int64
			// Background noise: tasks of Go, which count by the 64.
			stopNoise := make(chan struct{})
			var noise sync.WaitGroup
			noise.Go(func() {
				for {
					select {
					case <-stopNoise:
						return
					default:
					}
					_ = p.Go(context.Background(), a4Kind(0, &ran))
				}
			})
			defer func() { close(stopNoise); noise.Wait() }()

			// heard counts the tasks with a submitter whose submitter has
			// heard; each hearing checks that Done counts at least that many.
			var heard atomic.Uint64
			var mu sync.Mutex
			var bad []string
			hear := func(what string) {
				n := heard.Add(1)
				if d := p.Stats().Done; d < n {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: Done = %d after %d submitters heard", what, d, n))
					mu.Unlock()
				}
			}
			ctx := a3Ctx(t, a4Hang)
			var subs sync.WaitGroup
			for g := range 3 {
				subs.Go(func() {
					for i := range 200 {
						kind := (i + g) % 5
						switch i % 5 {
						case 0:
							_ = p.Do(ctx, a4Kind(kind, &ran))
							hear("Do")
						case 1:
							f, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) {
								return 0, a4Kind(kind, &ran)(ctx, w)
							})
							if err != nil {
								t.Error(err)
								return
							}
							_, _ = f.Wait(ctx)
							hear("Submit")
						case 2:
							got := make(chan struct{})
							if err := p.GoReport(ctx, a4Kind(kind, &ran), func(workerpool.Outcome, error) {
								hear("GoReport")
								close(got)
							}); err != nil {
								t.Error(err)
								return
							}
							<-got
						case 3:
							g, _ := p.Group(ctx)
							var gran atomic.Int64
							for range 3 {
								g.Go(func(ctx context.Context, w W) error {
									gran.Add(1)
									return a4Kind(kind%2, &ran)(ctx, w)
								})
							}
							_ = g.Wait()
							for range gran.Load() {
								hear("Group")
							}
						case 4:
							for range workerpool.Map(ctx, p, slices.Values([]int{1, 2, 3}), func(ctx context.Context, w W, _ int) (int, error) {
								return 0, a4Kind(kind%2, &ran)(ctx, w)
							}) {
								hear("Map")
							}
						}
					}
				})
			}
			within(t, "submitters", subs.Wait)
			mu.Lock()
			defer mu.Unlock()
			for i, b := range bad {
				if i < 10 {
					t.Error(b)
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d times a submitter heard before its task counted in Done", len(bad))
			}
		})
	}
}

// TestAttack4BusyIsExactWhileTasksBlock: "Busy is the number of workers
// running tasks: from taking a task to telling its submitter, or, for tasks
// of Go that a worker takes one after another, until it waits for the
// next." While n tasks block inside their workers, and the others idle,
// Busy is n — not less (a worker that publishes late) and not more.
func TestAttack4BusyIsExactWhileTasksBlock(t *testing.T) {
	const workers = 4
	p, _ := atkStart[W](t, "a4busy", workerpool.Workers(workers), workerpool.QueueSize(64))
	// Warm every worker up with tasks of Go run in a row, so that each has
	// a batch of Done to publish.
	var ran atomic.Int64
	for range 500 {
		if err := p.Go(context.Background(), a4Kind(0, &ran)); err != nil {
			t.Fatal(err)
		}
	}
	atkPoll(t, "the warm-up ran", a4Hang, func() bool { return ran.Load() == 500 })
	atkPoll(t, "Busy back to 0 after the warm-up", a4Hang, func() bool { return p.Stats().Busy == 0 })
	atkPoll(t, "Done = 500 once idle", a4Hang, func() bool { return p.Stats().Done == 500 })

	for n := 1; n <= workers; n++ {
		for _, api := range []string{"Go", "Do", "GoReport", "Group"} {
			started := make(chan struct{}, n)
			release := make(chan struct{})
			block := func(context.Context, W) error {
				started <- struct{}{}
				<-release
				return nil
			}
			var wg sync.WaitGroup
			var g *workerpool.Group[W]
			if api == "Group" {
				g, _ = p.Group(context.Background())
			}
			for range n {
				switch api {
				case "Go":
					if err := p.Go(context.Background(), block); err != nil {
						t.Fatal(err)
					}
				case "Do":
					wg.Go(func() { _ = p.Do(context.Background(), block) })
				case "GoReport":
					if err := p.GoReport(context.Background(), block, func(workerpool.Outcome, error) {}); err != nil {
						t.Fatal(err)
					}
				case "Group":
					g.Go(block)
				}
			}
			for range n {
				atkWait(t, "blockers start", a4Hang, chanOf(started))
			}
			s := p.Stats()
			if s.Busy != n {
				t.Errorf("%s: Busy = %d while %d tasks block (stats %+v)", api, s.Busy, n, s)
			}
			close(release)
			wg.Wait()
			if g != nil {
				within(t, "group", func() { _ = g.Wait() })
			}
			atkPoll(t, api+": Busy back to 0", a4Hang, func() bool { return p.Stats().Busy == 0 })
		}
	}
}

// chanOf turns one receive from c into a channel that closes after it.
func chanOf(c <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() { <-c; close(done) }()
	return done
}

// TestAttack4IdleMeansBusyZeroAndDoneComplete: once every worker waits for
// a task, Busy is 0 and Done counts every task that ran ("all once it waits
// or ends"), after runs of Go tasks broken by panics, Goexits, ErrBroken
// rebuilds and MaxTasksPerWorker recycles, and tasks whose run was cut in
// the middle of a batch of 64.
func TestAttack4IdleMeansBusyZeroAndDoneComplete(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []workerpool.Option
	}{
		{"fixed", []workerpool.Option{workerpool.Workers(2)}},
		{"recycle", []workerpool.Option{workerpool.Workers(2), workerpool.MaxTasksPerWorker(5)}},
		{"age", []workerpool.Option{workerpool.Workers(2), workerpool.MaxWorkerAge(time.Millisecond)}},
		{"elastic", []workerpool.Option{workerpool.Elastic(0, 3, 5*time.Millisecond)}},
		{"thread", []workerpool.Option{workerpool.Workers(2), workerpool.LockOSThread()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]workerpool.Option{workerpool.QueueSize(32),
				workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
				workerpool.ErrorHandler(func(error) {})}, tc.opts...)
			p, app := atkStart[W](t, "a4idle"+tc.name, opts...)
			var ran atomic.Int64
			total := int64(0)
			for round := range 6 {
				// a run of Go tasks, of a length that is no multiple of 64,
				// with a fault somewhere in it
				n := 64*round + 37
				for i := range n {
					kind := 0
					if i == n/2 {
						kind = 1 + round%4
					}
					if err := p.Go(context.Background(), a4Kind(kind, &ran)); err != nil {
						t.Fatal(err)
					}
				}
				total += int64(n)
				atkPoll(t, "every task ran", a4Hang, func() bool { return ran.Load() == total })
				atkPoll(t, fmt.Sprintf("round %d: Busy 0 and Done %d once idle", round, total), a4Hang, func() bool {
					s := p.Stats()
					return s.Busy == 0 && s.Done == uint64(total) && s.Queued == 0
				})
			}
			if err := app.Stop(a3Ctx(t, a4Hang)); err != nil {
				t.Fatal(err)
			}
			s := p.Stats()
			if s.Busy != 0 || s.Done != uint64(total) || s.Dropped != 0 {
				t.Errorf("after stop: %+v, want Busy 0, Done %d, Dropped 0", s, total)
			}
		})
	}
}

// TestAttack4DonePlusDroppedAfterEveryStop: "After a stop, Done + Dropped is
// every task the pool accepted", and Done is every task that ran: tasks of
// every kind of submitter, some of whose contexts end while they are
// queued, with faults and recycles, a Resize or an elastic pool, stopped
// with each policy while tasks are queued and running.
func TestAttack4DonePlusDroppedAfterEveryStop(t *testing.T) {
	policies := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}
	for round := range 12 {
		policy := policies[round%3]
		t.Run(fmt.Sprintf("%d-%v", round, policy), func(t *testing.T) {
			opts := []workerpool.Option{workerpool.QueueSize(6),
				workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
				workerpool.ErrorHandler(func(error) {}), workerpool.MaxTasksPerWorker(3)}
			if round%4 == 3 {
				opts = append(opts, workerpool.Elastic(0, 3, time.Millisecond))
			} else {
				opts = append(opts, workerpool.Workers(2))
			}
			if round%2 == 1 {
				opts = append(opts, workerpool.MaxWorkerAge(time.Millisecond))
			}
			p, _ := atkStart[W](t, fmt.Sprintf("a4acc%d", round), opts...)
			var ran atomic.Int64
			var accepted atomic.Int64 // by the submissions that say so
			var vague atomic.Int64    // run by Do, groups, Map: acceptance unknown
			var vagueRan atomic.Int64
			stop := make(chan struct{})
			var subs sync.WaitGroup
			for g := range 4 {
				subs.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						kind := 0
						if i%7 == 3 {
							kind = 1 + (i/7+g)%4
						}
						ctx, cancel := context.WithCancel(context.Background())
						if i%3 == 0 {
							cancel() // ended while queued, or before
						}
						task := a4Kind(kind, &ran)
						switch (i + g) % 6 {
						case 0:
							if p.Go(ctx, task) == nil {
								accepted.Add(1)
							}
						case 1:
							if p.TryGo(task) {
								accepted.Add(1)
							}
						case 2:
							if p.GoReport(ctx, task, func(workerpool.Outcome, error) {}) == nil {
								accepted.Add(1)
							}
						case 3:
							if _, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) {
								return 0, task(ctx, w)
							}); err == nil {
								accepted.Add(1)
							}
						case 4:
							vague.Add(1)
							_ = p.Do(ctx, func(ctx context.Context, w W) error { vagueRan.Add(1); return task(ctx, w) })
						case 5:
							if round%4 != 3 && i%11 == 5 {
								_ = p.Resize(1 + i%3)
							}
							vague.Add(1)
							grp, _ := p.Group(ctx)
							grp.Go(func(ctx context.Context, w W) error { vagueRan.Add(1); return task(ctx, w) })
							_ = grp.Wait()
						}
						cancel()
					}
				})
			}
			atkPoll(t, "some tasks ran", a4Hang, func() bool { return ran.Load() > 200 })
			stopErr := make(chan error, 1)
			go func() { stopErr <- p.Stop(a3Ctx(t, a4Hang), policy) }()
			atkPoll(t, "the pool refuses tasks", a4Hang, func() bool {
				return errors.Is(p.Go(context.Background(), a4Kind(0, &ran)), workerpool.ErrClosed)
			})
			close(stop)
			within(t, "submitters", subs.Wait)
			within(t, "Stop", func() {
				if err := <-stopErr; err != nil {
					t.Errorf("Stop = %v", err)
				}
			})
			s := p.Stats()
			if s.Done != uint64(ran.Load()) {
				t.Errorf("Done = %d, but %d tasks ran (stats %+v)", s.Done, ran.Load(), s)
			}
			acc := uint64(accepted.Load() + vagueRan.Load())
			// Every task of Do and groups that ran was accepted; those that
			// did not may or may not have been.
			if s.Done+s.Dropped < acc || s.Done+s.Dropped > acc+uint64(vague.Load()) {
				t.Errorf("Done %d + Dropped %d = %d, want between %d and %d accepted tasks (stats %+v)",
					s.Done, s.Dropped, s.Done+s.Dropped, acc, acc+uint64(vague.Load()), s)
			}
			if s.Busy != 0 || s.Queued != 0 {
				t.Errorf("after stop: Busy %d, Queued %d", s.Busy, s.Queued)
			}
		})
	}
}
