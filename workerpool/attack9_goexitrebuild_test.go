package workerpool_test

// Round 9 (found while testing item 2): a rebuild made before a task — a
// failed health check (CheckIdle) or MaxWorkerAge — whose constructor calls
// runtime.Goexit. Docs: "Every accepted task either runs, or its submitter
// is told, with ErrClosed, that it did not"; a constructor's Goexit makes
// the rebuild fail with an *resources.OpenError (CHANGELOG), and a failed
// rebuild is retried ("retrying as a rebuild does").

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type G9a struct{ w W }
type G9b struct{ w W }
type G9Deps struct {
	fx.In
	B *G9b
}

func TestAttack9GoexitInRebuildBeforeTask(t *testing.T) {
	for _, trig := range []string{"check", "age"} {
		for _, kind := range []string{"goexit", "panic", "fail"} {
			for _, lock := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s-%s-lock%v", trig, kind, lock), func(t *testing.T) {
					l := newLedger()
					var checkFail atomic.Bool
					var faults atomic.Int64
					opts := []workerpool.Option{
						workerpool.Workers(1),
						workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
						workerpool.Resources(
							resources.PerWorker(func(w W) (*G9a, func(), error) {
								l.add("open", "A", w)
								return &G9a{w}, func() { l.add("close", "A", w) }, nil
							}, resources.Check(func(context.Context, *G9a) error {
								if checkFail.Swap(false) {
									return errors.New("g9 check failed")
								}
								return nil
							})),
							resources.PerWorker(func(a *G9a, w W) (*G9b, func(), error) {
								if w.Generation >= 1 && faults.Add(1) == 1 {
									switch kind {
									case "goexit":
										runtime.Goexit()
									case "panic":
										panic("g9 panic")
									default:
										return nil, nil, errors.New("g9 fail")
									}
								}
								l.add("open", "B", w)
								return &G9b{w}, func() { l.add("close", "B", w) }, nil
							}),
						),
					}
					if trig == "check" {
						opts = append(opts, workerpool.CheckIdle(time.Nanosecond))
					} else {
						opts = append(opts, workerpool.MaxWorkerAge(20*time.Millisecond))
					}
					if lock {
						opts = append(opts, workerpool.LockOSThread())
					}
					p, app := atkStart[G9Deps](t, "g9"+trig+kind, opts...)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if err := p.Do(ctx, func(context.Context, G9Deps) error { return nil }); err != nil {
						t.Fatal(err)
					}
					if trig == "check" {
						time.Sleep(2 * time.Millisecond)
						checkFail.Store(true)
					} else {
						time.Sleep(40 * time.Millisecond)
					}
					var ran atomic.Bool
					err := p.Do(ctx, func(context.Context, G9Deps) error { ran.Store(true); return nil })
					t.Logf("Do: %v ran=%v stats %+v", err, ran.Load(), p.Stats())
					if err != nil || !ran.Load() {
						t.Errorf("the task held by a rebuild whose constructor %s once: err=%v ran=%v (stats %+v)", kind, err, ran.Load(), p.Stats())
					}
					if faults.Load() == 0 {
						t.Errorf("no rebuild happened")
					}
					sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer scancel()
					if err := app.Stop(sctx); err != nil {
						t.Logf("app.Stop: %v", err)
					}
					atkPoll(t, "all closed", 5*time.Second, func() bool { o, c := l.counts(); return o == c })
					// (the ledger keys by generation, which a failed attempt
					// reuses by design: only the totals are compared)
					if s := p.Stats(); s.Done+s.Dropped != 2 {
						t.Errorf("after stop, Done+Dropped = %d, want the 2 accepted (stats %+v)", s.Done+s.Dropped, s)
					}
				})
			}
		}
	}
}
