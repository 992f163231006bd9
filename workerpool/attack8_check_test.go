package workerpool_test

// Round 8: health checks of resources the task parameter does not need.
// "A worker opens only what R needs": a Check on a resource the worker never
// opened must never run (on a nil or zero value); a Check on a resource R
// needs only indirectly (B needs A, R needs B) runs on the worker's own A.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8Unneeded struct{ w W }
type a8ChkA struct{ w W }
type a8ChkB struct{ a *a8ChkA }
type a8ChkDeps struct {
	fx.In
	B *a8ChkB
	W W
}

func TestAttack8CheckOfUnneededAndIndirectResources(t *testing.T) {
	clock := fxpooltest.NewClock()
	var unneededChecks, unneededOpens, aChecks, aBad atomic.Int64
	var failA atomic.Bool
	p, _ := atkStart[a8ChkDeps](t, "a8chk",
		workerpool.Workers(2),
		clock.Option(),
		workerpool.CheckIdle(time.Minute),
		workerpool.Resources(
			resources.PerWorker(func(w W) *a8Unneeded { unneededOpens.Add(1); return &a8Unneeded{w} },
				resources.Check(func(_ context.Context, u *a8Unneeded) error {
					unneededChecks.Add(1)
					return errors.New("a8: the unneeded resource is always broken")
				})),
			resources.PerWorker(func(w W) *a8ChkA { return &a8ChkA{w} },
				resources.Check(func(_ context.Context, a *a8ChkA) error {
					aChecks.Add(1)
					if a == nil {
						aBad.Add(1)
						return nil
					}
					if failA.Load() {
						return errors.New("a8: A went bad")
					}
					return nil
				})),
			resources.PerWorker(func(a *a8ChkA) *a8ChkB { return &a8ChkB{a} }),
		),
	)
	do := func() W {
		var got W
		if err := p.Do(context.Background(), func(_ context.Context, d a8ChkDeps) error {
			if d.B == nil || d.B.a == nil || d.B.a.w != d.W {
				t.Errorf("B %+v of worker %+v", d.B, d.W)
			}
			got = d.W
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for range 4 {
		do()
	}
	clock.Add(2 * time.Minute)
	for range 4 {
		do()
	}
	if n := unneededOpens.Load(); n != 0 {
		t.Errorf("a resource R does not need was opened %d times", n)
	}
	if n := unneededChecks.Load(); n != 0 {
		t.Errorf("the Check of a resource never opened ran %d times", n)
	}
	if aChecks.Load() == 0 {
		t.Error("the Check of A, which R needs through B, never ran after idling")
	}
	if aBad.Load() != 0 {
		t.Error("A's Check ran on a nil A")
	}
	if s := p.Stats(); s.Restarts != 0 {
		t.Errorf("Restarts = %d with every needed check passing", s.Restarts)
	}
	// A fails its check: the worker rebuilds A and B before the task.
	failA.Store(true)
	clock.Add(2 * time.Minute)
	w := do()
	failA.Store(false)
	if w.Generation == 0 {
		t.Errorf("after A's failed check the task ran on generation %d", w.Generation)
	}
}
