package workerpool_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// TestAttack13DrainWaitsForAnOpenInProgress: a Drain stop with a 25 s
// budget begins while the pool's only worker is opening its resources —
// a rebuild after ErrBroken, or an elastic pool's first worker grown for
// the queued tasks (Elastic(0, 1, …)). Queued tasks start during the first
// two fifths of the budget under Drain, and a rebuild's constructor context
// lasts until the pool begins to drop tasks: the open (30 ms) finishes and
// every queued task runs.
func TestAttack13DrainWaitsForAnOpenInProgress(t *testing.T) {
	for _, elastic := range []bool{false, true} {
		name := "Rebuild"
		if elastic {
			name = "ElasticGrow"
		}
		t.Run(name, func(t *testing.T) {
			for round := range 10 {
				if msg := drainDuringSlowOpen(t, elastic); msg != "" {
					t.Fatalf("round %d: %s", round, msg)
				}
			}
		})
	}
}

func drainDuringSlowOpen(t *testing.T, elastic bool) string {
	opening := make(chan struct{}, 1)
	var dropped, ran atomic.Int32
	shape := workerpool.Workers(1)
	if elastic {
		shape = workerpool.Elastic(0, 1, time.Hour)
	}
	var p *workerpool.Pool[*res13]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
		workerpool.Provide[*res13]("atk13slow",
			shape,
			workerpool.QueueSize(4),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.OnDropped(func(context.Context, func(context.Context, *res13) error) { dropped.Add(1) }),
			workerpool.Resources(resources.PerWorker(func(w W) (*res13, error) {
				if elastic || w.Generation == 1 {
					select {
					case opening <- struct{}{}:
					default:
					}
					time.Sleep(30 * time.Millisecond)
				}
				return &res13{w: w}, nil
			})),
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
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	}()
	bg := context.Background()
	want := int32(3)
	if !elastic {
		if err := p.Go(bg, func(context.Context, *res13) error {
			return fmt.Errorf("attack13: %w", resources.ErrBroken)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range want {
		if err := p.Go(bg, func(context.Context, *res13) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	atkWait(t, "a worker opening", 10*time.Second, opening)
	sctx, scancel := context.WithTimeout(bg, 25*time.Second)
	defer scancel()
	if err := p.Stop(sctx, workerpool.Drain); err != nil {
		return fmt.Sprintf("stop: %v", err)
	}
	if ran.Load() != want || dropped.Load() != 0 {
		return fmt.Sprintf("Drain with a 25 s budget while a worker opened: %d of %d queued tasks ran, %d dropped", ran.Load(), want, dropped.Load())
	}
	return ""
}
