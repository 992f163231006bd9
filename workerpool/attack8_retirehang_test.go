package workerpool_test

// Round 8: cleanups of workers that Resize removes, or that an elastic pool
// retires, hang until their context ends (fxpooltest.Hang). "Cleanups that no
// stop bounds — a rebuild's, a recycle's, an elastic retirement's — get a
// context that ends after CloseTimeout", and "No goroutine outlives
// app.Stop": each such cleanup's context ends, the worker's close is over,
// the pool keeps serving, and the app stops within its budget with nothing
// left running.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8Hung struct{ w W }
type a8HungDeps struct {
	fx.In
	H *a8Hung
	W W
}

func TestAttack8RetiredWorkersHungCleanup(t *testing.T) {
	for _, mode := range []string{"resize", "elastic", "broken", "recycle"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			var closeErrs []error
			rec := fxpooltest.NewRecorder()
			opts := []workerpool.Option{
				workerpool.CloseTimeout(150 * time.Millisecond),
				workerpool.QueueSize(4),
				workerpool.Events(func(e workerpool.Event) {
					rec.Record(e)
					if c, ok := e.(workerpool.ResourceClosed); ok && c.Err != nil {
						mu.Lock()
						closeErrs = append(closeErrs, c.Err)
						mu.Unlock()
					}
				}),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
					func(w W) (*a8Hung, func(), error) { return &a8Hung{w}, func() {}, nil },
					fxpooltest.OnClose(1, fxpooltest.Hang), fxpooltest.OnClose(2, fxpooltest.Hang),
				))),
			}
			switch mode {
			case "elastic":
				opts = append(opts, workerpool.Elastic(1, 3, 10*time.Millisecond))
			case "recycle":
				opts = append(opts, workerpool.Workers(2), workerpool.MaxTasksPerWorker(1))
			default:
				opts = append(opts, workerpool.Workers(3))
			}
			var p *workerpool.Pool[a8HungDeps]
			app := fxpooltest.New(t, fx.StopTimeout(5*time.Second),
				workerpool.Provide[a8HungDeps]("a8hung"+mode, opts...), fx.Populate(&p))
			app.RequireStart()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			switch mode {
			case "resize":
				if err := p.Resize(1); err != nil {
					t.Fatal(err)
				}
			case "elastic":
				// grow to 3, then let them idle out
				release := atkBlock(t, p, 3)
				release()
			case "broken", "recycle":
				for i := range 2 {
					err := p.Do(ctx, func(context.Context, a8HungDeps) error {
						if mode == "broken" {
							return fmt.Errorf("a8 %d: %w", i, resources.ErrBroken)
						}
						return nil
					})
					if err != nil && !errors.Is(err, resources.ErrBroken) {
						t.Fatal(err)
					}
				}
			}
			// two cleanups hang until their context ends: after CloseTimeout
			atkPoll(t, "two hung closes reported", 10*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(closeErrs) >= 2
			})
			mu.Lock()
			for _, err := range closeErrs {
				if !errors.Is(err, fxpooltest.ErrInjected) {
					t.Errorf("close error %v does not wrap ErrInjected", err)
				}
			}
			mu.Unlock()
			for i := range 20 {
				if err := p.Do(ctx, func(context.Context, a8HungDeps) error { return nil }); err != nil {
					t.Fatalf("Do %d after the hung closes: %v", i, err)
				}
			}
			atkPoll(t, "no worker closing", 10*time.Second, func() bool { return p.Stats().Closing == 0 })
			// The retirements' close errors are not the stop's (see
			// TestAttack8EarlyCloseFailureAndTheStopsError).
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			if err := app.Stop(sctx); err != nil {
				t.Errorf("app.Stop = %v", err)
			}
			app.VerifyNoLeaks()
			rec.Verify(t)
		})
	}
}
