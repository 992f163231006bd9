package workerpool_test

// Round 10: a worker whose constructor used a lot of stack must still be a
// small idle goroutine — not only the first workers of a start, but those a
// Resize adds, those an Elastic pool grows, and a worker after its rebuild.
// The constructor here uses 128 KiB, so that even after the collector halved
// an idle stack twice it would hold 32 KiB; a fresh goroutine's is 2 KiB.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

type A10Deep struct {
	gen int
	sum int
}

const a10deepKiB = 128

func TestAttack10IdleStackAfterDeepOpen(t *testing.T) {
	a10idleStack(t, "start", "start-concurrency", "resize", "elastic")
}

// FAILS: a worker whose rebuild (after resources.ErrBroken, or a recycle
// for MaxTasksPerWorker) ran a constructor that grew its stack keeps that
// stack while idle: 64 KiB a worker after two collections, where a worker
// whose first open was as deep holds under 1 KiB.
func TestAttack10IdleStackAfterDeepRebuild(t *testing.T) {
	a10idleStack(t, "rebuild", "recycle")
}

func a10idleStack(t *testing.T, hows ...string) {
	const n = 150
	for _, how := range hows {
		t.Run(how, func(t *testing.T) {
			var opens atomic.Int64
			ctor := func(w W) *A10Deep {
				opens.Add(1)
				kib := a10deepKiB
				if (how == "rebuild" || how == "recycle") && w.Generation == 0 {
					kib = 0 // light first, deep when rebuilt
				}
				if (how == "resize") && w.ID == 0 {
					kib = 0
				}
				return &A10Deep{gen: w.Generation, sum: deep(kib)}
			}
			opts := []workerpool.Option{workerpool.Resources(resources.PerWorker(ctor)), workerpool.QueueSize(4 * n), workerpool.ErrorHandler(func(error) {})}
			switch how {
			case "start":
				opts = append(opts, workerpool.Workers(n))
			case "start-concurrency":
				opts = append(opts, workerpool.Workers(n), workerpool.StartConcurrency(3))
			case "resize":
				opts = append(opts, workerpool.Workers(1))
			case "rebuild":
				opts = append(opts, workerpool.Workers(n))
			case "recycle":
				opts = append(opts, workerpool.Workers(n), workerpool.MaxTasksPerWorker(1))
			case "elastic":
				opts = append(opts, workerpool.Elastic(0, n, time.Hour))
			}
			var p *workerpool.Pool[*A10Deep]
			app := a10app(t, &p, "a10stk", nil, opts...)
			ctx, cancel := a10ctx(30 * time.Second)
			defer cancel()
			before := stackInUse()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer app.Stop(ctx)
			var mid int64
			switch how {
			case "resize":
				mid = stackInUse()
				if err := p.Resize(n + 1); err != nil {
					t.Fatal(err)
				}
				atkPoll(t, "resized workers open", 20*time.Second, func() bool { s := p.Stats(); return s.Workers == n+1 && s.Opening == 0 })
			case "elastic":
				// n tasks held at once make the pool grow to n.
				var arrived sync.WaitGroup
				arrived.Add(n)
				release := make(chan struct{})
				for range n {
					if err := p.Go(ctx, func(context.Context, *A10Deep) error { arrived.Done(); <-release; return nil }); err != nil {
						t.Fatal(err)
					}
				}
				a10within(t, "elastic pool grows to n", 20*time.Second, arrived.Wait)
				close(release)
				atkPoll(t, "all idle", 10*time.Second, func() bool { return p.Stats().Busy == 0 && p.Stats().Queued == 0 })
			case "rebuild", "recycle":
				var arrived sync.WaitGroup
				arrived.Add(n)
				release := make(chan struct{})
				for range n {
					if err := p.Go(ctx, func(context.Context, *A10Deep) error {
						arrived.Done()
						<-release
						if how == "recycle" {
							return nil
						}
						return resources.ErrBroken
					}); err != nil {
						t.Fatal(err)
					}
				}
				a10within(t, "every worker busy", 20*time.Second, arrived.Wait)
				close(release)
				atkPoll(t, "every worker rebuilt", 20*time.Second, func() bool {
					s := p.Stats()
					return s.Restarts+s.Recycles >= n && s.Opening == 0 && s.Workers == n && s.Busy == 0
				})
			}
			// let every worker take a task: a worker serves, then idles.
			tasks := 2 * n
			if how == "recycle" {
				tasks = 0 // each would recycle again
			}
			for range tasks {
				if err := p.Go(ctx, func(_ context.Context, d *A10Deep) error {
					if (how == "rebuild" || how == "recycle") && d.gen == 0 {
						return errors.New("generation 0 after the rebuild")
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			atkPoll(t, "all idle", 10*time.Second, func() bool { s := p.Stats(); return s.Busy == 0 && s.Queued == 0 })
			wantFailed := uint64(0)
			if how == "rebuild" {
				wantFailed = n // the ErrBroken tasks
			}
			if s := p.Stats(); s.Failed != wantFailed {
				t.Errorf("tasks failed: %+v", s)
			}
			after := stackInUse()
			per := (after - before) / n
			if how == "resize" {
				per = (after - mid) / n
			}
			t.Logf("%s: %d bytes of stack a worker (%d opens)", how, per, opens.Load())
			if per > 8<<10 {
				t.Errorf("%s: an idle worker holds %d bytes of stack after a constructor that used %d KiB; want a fresh goroutine's", how, per, a10deepKiB)
			}
			if err := app.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
