package workerpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Minimal: grow with slow opens, shrink before the opens finish, then stop.
// Removed workers "retire at once" / close exactly once; the stop must not
// find workers "stuck waiting for a task".
func TestAttackResizeShrinkWhileOpening(t *testing.T) {
	for _, wait := range []time.Duration{0, 400 * time.Millisecond} {
		t.Run(wait.String(), func(t *testing.T) {
			l := newLedger()
			p, _ := atkStart[AB](t, "shrinkopen", workerpool.Workers(1),
				workerpool.Resources(
					resources.PerWorker(func(ctx context.Context, w W) (*ResA, func(), error) {
						if w.ID >= 1 {
							select {
							case <-ctx.Done():
								return nil, nil, context.Cause(ctx)
							case <-time.After(200 * time.Millisecond):
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
			if err := p.Resize(4); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // the new workers are opening
			if err := p.Resize(1); err != nil {
				t.Fatal(err)
			}
			if wait > 0 {
				deadline := time.Now().Add(2 * time.Second)
				for {
					s := p.Stats()
					if s.Workers == 1 && s.Opening == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("2s after Resize(1), the opens long over: Stats = %+v, Capacity = %+v; want 1 worker", s, p.Capacity())
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			ctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			t0 := time.Now()
			err := p.Stop(ctx, workerpool.Drain)
			took := time.Since(t0)
			if err != nil {
				t.Errorf("Stop = %v after %v", err, took)
			}
			if s := p.Stats(); s.Workers != 0 || s.Opening != 0 {
				t.Errorf("Stats right after Stop = %+v", s)
			}
			atkPoll(t, "all closed", 5*time.Second, func() bool { o, c := l.counts(); return o == c })
			l.check(t)
		})
	}
}
