package workerpool_test

// Round 7: a user callback that calls runtime.Goexit — t.FailNow inside an
// ErrorHandler, Events or OnDropped of a test's pool. "A panic in a user's
// callback (ErrorHandler, OnDropped, Events) is logged, never a crash." The
// worker it ran on must go on (a one-worker pool keeps serving) and every
// resource opened must close exactly once.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack7_CallbackGoexit(t *testing.T) {
	for _, cb := range []string{"ErrorHandler", "Events"} {
		t.Run(cb, func(t *testing.T) {
			l := newLedger()
			var fired atomic.Int32
			opts := []workerpool.Option{workerpool.Workers(1), abResources(l), workerpool.WithClock(a7ClockFor(t))}
			switch cb {
			case "ErrorHandler":
				opts = append(opts, workerpool.ErrorHandler(func(error) {
					if fired.Add(1) == 1 {
						runtime.Goexit()
					}
				}))
			case "Events":
				opts = append(opts, workerpool.Events(func(e workerpool.Event) {
					if _, ok := e.(workerpool.WorkerRebuilt); ok && fired.Add(1) == 1 {
						runtime.Goexit()
					}
				}), workerpool.MaxTasksPerWorker(1))
			}
			p, app := atkStart[AB](t, "a7cbgoexit", opts...)
			if err := p.Go(context.Background(), func(context.Context, AB) error { return errors.New("boom") }); err != nil {
				t.Fatal(err)
			}
			var ran atomic.Int32
			a7Within(t, "tasks after the callback's Goexit", a7Hang, func() {
				for i := range 5 {
					if err := p.Do(context.Background(), func(context.Context, AB) error { ran.Add(1); return nil }); err != nil {
						t.Errorf("Do %d = %v", i, err)
					}
				}
			})
			t.Logf("fired %d, stats %+v", fired.Load(), p.Stats())
			var stopErr error
			a7Within(t, "app.Stop", a7Hang, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				stopErr = app.Stop(ctx)
			})
			t.Logf("stop: %v", stopErr)
			atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := l.counts(); return o == c })
			l.check(t)
			_ = fmt.Sprint()
		})
	}
}

func a7ClockFor(t *testing.T) *a7Clock {
	c := &a7Clock{}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Logf("clock waits %v (RestartBackoff's default max is 5s)", c.waits)
	})
	return c
}
