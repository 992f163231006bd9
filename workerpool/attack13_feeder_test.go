package workerpool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// TestAttack13FailedPoolStillStopsItsFeeders: a feeder registered with
// AddFeeder while the pool serves; the pool then fails (MaxRestarts(1) and
// two panicking tasks); then the pool is stopped, by Pool.Stop or app.Stop.
// AddFeeder: "every stop of the pool first calls stop". A feeder whose stop
// is never called is never told to stop feeding: the goroutines it started
// (jetstream.Consume's pull loop and heartbeat, per the package docs) are
// ended by nothing. Found by TestAttack13FeedersAndFailuresRacingStop (about
// 7% of its rounds, each with MaxRestarts); fails in every round here.
func TestAttack13FailedPoolStillStopsItsFeeders(t *testing.T) {
	for _, byApp := range []bool{false, true} {
		name := "PoolStop"
		if byApp {
			name = "AppStop"
		}
		t.Run(name, func(t *testing.T) {
			var p *workerpool.Pool[W]
			app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
				workerpool.Provide[W]("atk13feed",
					workerpool.Workers(1),
					workerpool.QueueSize(4),
					workerpool.MaxRestarts(1, time.Minute),
					workerpool.RestartBackoff(100*time.Microsecond, time.Millisecond),
					workerpool.ErrorHandler(func(error) {}),
				),
				fx.Populate(&p))
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			if err := p.AddFeeder(func(context.Context) error { calls.Add(1); return nil }); err != nil {
				t.Fatalf("AddFeeder on a serving pool: %v", err)
			}
			// fail the pool: two restarts within the window, past MaxRestarts(1)
			for range 2 {
				if err := p.Do(context.Background(), func(context.Context, W) error { panic("attack13") }); err == nil {
					t.Fatal("a panicking task returned nil")
				}
			}
			atkPoll(t, "the pool fails (Go returns ErrClosed)", 10*time.Second, func() bool {
				return errors.Is(p.Go(context.Background(), func(context.Context, W) error { return nil }), workerpool.ErrClosed)
			})
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			var err error
			if byApp {
				err = app.Stop(sctx)
			} else {
				err = p.Stop(sctx, workerpool.Drain)
				_ = app.Stop(sctx)
			}
			t.Logf("stop: %v", err)
			if n := calls.Load(); n != 1 {
				t.Errorf("the feeder's stop was called %d times by the stop of a failed pool, want 1 (AddFeeder: every stop of the pool first calls stop)", n)
			}
		})
	}
}
