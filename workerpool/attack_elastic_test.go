package workerpool_test

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

// Elastic with a tiny idle: bursts race with retirements; every task runs,
// each resource opened is closed exactly once in reverse order; Stats
// right after Stop show nothing open, busy, queued, opening or closing.
func TestAttackElasticRetirementRaces(t *testing.T) {
	l := newLedger()
	p, _ := atkStart[AB](t, "elastic", workerpool.Elastic(0, 4, time.Millisecond), workerpool.QueueSize(4), abResources(l))
	var ran, submitted atomic.Int64
	for round := range 30 {
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 + round%7 {
					if err := p.Go(context.Background(), func(ctx context.Context, d AB) error {
						if d.B == nil {
							return errors.New("nil resource")
						}
						ran.Add(1)
						return nil
					}); err != nil {
						t.Errorf("Go: %v", err)
						return
					}
					submitted.Add(1)
				}
			}()
		}
		wg.Wait()
		time.Sleep(time.Duration(round%4) * time.Millisecond) // let some retire
	}
	atkPoll(t, "all tasks ran", 10*time.Second, func() bool { return ran.Load() == submitted.Load() })
	if s := p.Stats(); s.Workers > 4 {
		t.Errorf("Workers %d > max 4", s.Workers)
	}
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	if err := p.Stop(ctx, workerpool.Drain); err != nil {
		t.Errorf("Stop = %v", err)
	}
	s := p.Stats()
	if s.Workers != 0 || s.Busy != 0 || s.Queued != 0 || s.Opening != 0 || s.Closing != 0 {
		t.Errorf("Stats right after Stop = %+v, want all gauges 0", s)
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity().Workers right after Stop = %d", c.Workers)
	}
	l.check(t)
	o, cl := l.counts()
	t.Logf("opens %d closes %d tasks %d", o, cl, ran.Load())
}

// Elastic min=0: a task submitted while no worker is open must run; Stop
// while a worker is mid-open (slow open honouring ctx) closes it exactly once.
func TestAttackElasticStopDuringGrowth(t *testing.T) {
	l := newLedger()
	opening := make(chan struct{}, 8)
	var p *workerpool.Pool[AB]
	p, _ = atkStart[AB](t, "elgrow", workerpool.Elastic(0, 3, time.Minute), workerpool.QueueSize(8),
		workerpool.Resources(
			resources.PerWorker(func(ctx context.Context, w W) (*ResA, func(), error) {
				opening <- struct{}{}
				select {
				case <-ctx.Done():
					return nil, nil, context.Cause(ctx)
				case <-time.After(300 * time.Millisecond):
				}
				l.add("open", "A", w)
				return &ResA{w}, func() { l.add("close", "A", w) }, nil
			}),
			resources.PerWorker(func(a *ResA, w W) (*ResB, func(), error) {
				l.add("open", "B", w)
				return &ResB{a, w}, func() { l.add("close", "B", w) }, nil
			}),
		))
	var ran, notRun atomic.Int32
	for range 6 {
		if err := p.GoReport(context.Background(), func(context.Context, AB) error { ran.Add(1); return nil },
			func(o workerpool.Outcome, err error) {
				if o == workerpool.NotRun {
					notRun.Add(1)
				}
			}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-opening:
	case <-time.After(5 * time.Second):
		t.Fatal("elastic pool never grew for queued tasks")
	}
	ctx, c := context.WithTimeout(context.Background(), 3*time.Second)
	defer c()
	err := p.Stop(ctx, workerpool.Drain)
	t.Logf("Stop = %v; ran %d notRun %d", err, ran.Load(), notRun.Load())
	if ran.Load()+notRun.Load() != 6 {
		t.Errorf("ran %d + notRun %d != 6 accepted", ran.Load(), notRun.Load())
	}
	if s := p.Stats(); s.Workers != 0 || s.Opening != 0 || s.Closing != 0 {
		t.Errorf("Stats right after Stop = %+v", s)
	}
	l.check(t)
}

// Resize(8) with slow opens, then Stop at once: nothing opened stays open,
// no goroutine survives (goleak), queued tasks all accounted for.
func TestAttackResizeThenStopDuringOpens(t *testing.T) {
	l := newLedger()
	var fails atomic.Int32
	p, _ := atkStart[AB](t, "rstop", workerpool.Workers(1), workerpool.QueueSize(16),
		workerpool.RestartBackoff(time.Millisecond, 5*time.Millisecond),
		workerpool.Resources(
			resources.PerWorker(func(ctx context.Context, w W) (*ResA, func(), error) {
				if w.ID >= 1 {
					if w.ID%2 == 0 && fails.Add(1) < 6 {
						return nil, nil, errDown // retried
					}
					select {
					case <-ctx.Done():
						return nil, nil, context.Cause(ctx)
					case <-time.After(time.Duration(w.ID) * 30 * time.Millisecond):
					}
				}
				l.add("open", "A", w)
				return &ResA{w}, func() { l.add("close", "A", w) }, nil
			}),
			resources.PerWorker(func(a *ResA, w W) (*ResB, func(), error) {
				l.add("open", "B", w)
				return &ResB{a, w}, func() { l.add("close", "B", w) }, nil
			}),
		))
	if err := p.Resize(8); err != nil {
		t.Fatal(err)
	}
	var ran, dropped atomic.Int32
	for range 10 {
		_ = p.GoReport(context.Background(), func(context.Context, AB) error { ran.Add(1); return nil },
			func(o workerpool.Outcome, _ error) {
				if o == workerpool.NotRun {
					dropped.Add(1)
				}
			})
	}
	time.Sleep(100 * time.Millisecond)
	if err := p.Resize(2); err != nil {
		t.Fatal(err)
	}
	ctx, c := context.WithTimeout(context.Background(), 3*time.Second)
	defer c()
	err := p.Stop(ctx, workerpool.DropQueued)
	if err != nil {
		t.Errorf("Stop = %v", err)
	}
	if ran.Load()+dropped.Load() != 10 {
		t.Errorf("ran %d + dropped %d != 10", ran.Load(), dropped.Load())
	}
	if s := p.Stats(); s.Workers != 0 || s.Opening != 0 || s.Closing != 0 {
		t.Errorf("Stats right after Stop = %+v", s)
	}
	l.check(t)
}
