package workerpool_test

// Round 8: the pool-level events are said once per pool life — PoolStarted
// when its OnStart returned, PoolStopped when its stop returned — however
// many stops are asked for (Pool.Stop, a second Pool.Stop, the app's stop),
// and every WorkerOpened without error has its WorkerClosed.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8Events struct {
	mu sync.Mutex
	ev []workerpool.Event
}

func (e *a8Events) add(ev workerpool.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func TestAttack8PoolEventsOncePerLife(t *testing.T) {
	for _, how := range []string{"app", "pool", "pool+pool+app", "concurrent"} {
		t.Run(how, func(t *testing.T) {
			evs := &a8Events{}
			var p *workerpool.Pool[AB]
			l := newLedger()
			app := fx.New(fx.NopLogger,
				workerpool.Provide[AB]("a8ev"+how, workerpool.Workers(3), workerpool.Events(evs.add), abResources(l)),
				fx.Populate(&p))
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if err := p.Do(ctx, func(context.Context, AB) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			switch how {
			case "app":
				if err := app.Stop(ctx); err != nil {
					t.Error(err)
				}
			case "pool":
				if err := p.Stop(ctx, workerpool.Drain); err != nil {
					t.Error(err)
				}
				if err := app.Stop(ctx); err != nil {
					t.Error(err)
				}
			case "pool+pool+app":
				_ = p.Stop(ctx, workerpool.Cancel)
				_ = p.Stop(ctx, workerpool.Drain)
				if err := app.Stop(ctx); err != nil {
					t.Error(err)
				}
				_ = p.Stop(ctx, workerpool.DropQueued)
			case "concurrent":
				var wg sync.WaitGroup
				for i := range 5 {
					wg.Add(1)
					go func() { defer wg.Done(); _ = p.Stop(ctx, workerpool.StopPolicy(i%3)) }()
				}
				if err := app.Stop(ctx); err != nil {
					t.Error(err)
				}
				wg.Wait()
			}
			evs.mu.Lock()
			defer evs.mu.Unlock()
			counts := map[string]int{}
			for _, e := range evs.ev {
				counts[fmt.Sprintf("%T", e)]++
			}
			if counts["workerpool.PoolStarted"] != 1 || counts["workerpool.PoolStopped"] != 1 {
				t.Errorf("events %v: want one PoolStarted and one PoolStopped", counts)
			}
			if counts["workerpool.WorkerOpened"] != 3 || counts["workerpool.WorkerClosed"] != 3 {
				t.Errorf("events %v: want 3 WorkerOpened and 3 WorkerClosed", counts)
			}
			if last, ok := evs.ev[len(evs.ev)-1].(workerpool.PoolStopped); !ok {
				t.Errorf("last event %T, want PoolStopped", evs.ev[len(evs.ev)-1])
			} else if last.Err != nil || last.Pool != "a8ev"+how {
				t.Errorf("PoolStopped = %+v", last)
			}
			if first, ok := evs.ev[0].(workerpool.PoolStarted); ok {
				t.Errorf("PoolStarted came first, before any worker opened: %+v", first)
			}
			l.check(t)
		})
	}
}
