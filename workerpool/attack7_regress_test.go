package workerpool_test

// Round 7: a per-worker cleanup that calls runtime.Goexit. Both tests failed
// before their fix (the Goexit was blamed on a task, said to abandon resources
// that had closed, and a recycle waited the whole maximum backoff).
//
// CHANGELOG (ErrGoexit): "A Goexit in a constructor or cleanup is an error of
// that resource." hooks: "a cleanup that calls runtime.Goexit (t.FailNow,
// testify's require) is treated like one that panics: its error wraps
// ErrGoexit, the cleanups behind it still run". ResourceClosed: "Err is the
// close's error, if any". RestartBackoff: "how long a worker waits before it
// tries again to reopen resources that failed to open: first about min".
//
// Each test runs the same pool twice: B's cleanup panics (the control, which
// behaves as documented), then it calls Goexit.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/workerpool"
)

// a7Clock is real time, but records every AfterFunc's duration and fires it
// at once: a backoff never stalls the test, and what it asked for is known.
type a7Clock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *a7Clock) Now() time.Time { return time.Now() }
func (c *a7Clock) AfterFunc(d time.Duration, f func()) workerpool.Timer {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return time.AfterFunc(0, f)
}

type a7Closes struct {
	mu      sync.Mutex
	bErr    map[int]error // generation → ResourceClosed.Err of a7B
	bSeen   map[int]bool
	rebuilt []workerpool.WorkerRebuilt
}

func (c *a7Closes) event(e workerpool.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e := e.(type) {
	case workerpool.ResourceClosed:
		if strings.Contains(e.Resource, "a7B") {
			c.bSeen[e.Worker.Generation] = true
			c.bErr[e.Worker.Generation] = e.Err
		}
	case workerpool.WorkerRebuilt:
		c.rebuilt = append(c.rebuilt, e)
	}
}

func isGoexit(err error) bool {
	return errors.Is(err, hooks.ErrGoexit) || errors.Is(err, workerpool.ErrGoexit)
}

// Stop: B's cleanup Goexits in every worker. Its ResourceClosed has no error,
// and the stop's error names no resource (it says "resources it left open are
// abandoned", though C, B and A all closed).
func TestAttack7CleanupGoexitIsAnErrorOfItsResource(t *testing.T) {
	for _, panics := range []bool{true, false} {
		for _, scenario := range []string{"stop", "recycle"} {
			name := fmt.Sprintf("%s/panic=%v", scenario, panics)
			t.Run(name, func(t *testing.T) {
				a7PanicInstead.Store(panics)
				defer a7PanicInstead.Store(false)
				j := newA7Journal()
				cl := &a7Closes{bErr: map[int]error{}, bSeen: map[int]bool{}}
				opts := []workerpool.Option{
					workerpool.Workers(1),
					a7Resources(j, func(w W) bool { return w.Generation == 0 }),
					workerpool.Events(cl.event),
					workerpool.WithClock(&a7Clock{}),
				}
				if scenario == "recycle" {
					opts = append(opts, workerpool.MaxTasksPerWorker(1))
				}
				p, _ := atkStart[a7ABC](t, "a7goexiterr", opts...)
				var stopErr error
				a7Within(t, "tasks and Stop", a7Hang, func() {
					for range 3 {
						if err := p.Do(context.Background(), func(context.Context, a7ABC) error { return nil }); err != nil {
							t.Errorf("Do = %v", err)
						}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					stopErr = p.Stop(ctx, workerpool.Drain)
				})
				atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := j.counts(); return o == c })
				j.check(t, false)
				cl.mu.Lock()
				defer cl.mu.Unlock()
				if !cl.bSeen[0] {
					t.Fatalf("no ResourceClosed for a7B of generation 0")
				}
				err := cl.bErr[0]
				t.Logf("ResourceClosed{a7B, gen 0}.Err = %v", err)
				t.Logf("Stop = %v", stopErr)
				if err == nil {
					t.Errorf("ResourceClosed of a7B (its cleanup %s) has Err nil: not an error of that resource", map[bool]string{true: "panicked", false: "called Goexit"}[panics])
				} else if !panics && !isGoexit(err) {
					t.Errorf("ResourceClosed{a7B}.Err = %v, want one wrapping ErrGoexit", err)
				}
				if scenario == "stop" {
					if stopErr == nil {
						t.Error("Stop = nil")
					} else if !strings.Contains(stopErr.Error(), "a7B") {
						t.Errorf("Stop's error does not name the resource whose cleanup failed: %v", stopErr)
					}
				}
			})
		}
	}
}

// Recycle: B's cleanup Goexits when generation 0 is recycled. No open failed
// and no task panicked, yet the worker leaves service and waits out
// RestartBackoff's max (5 s by default: a one-worker pool serves nothing
// meanwhile), then opens generation 1 only to throw it away untouched as a
// "restart".
func TestAttack7CleanupGoexitOnRecycleReopensAtOnce(t *testing.T) {
	for _, panics := range []bool{true, false} {
		t.Run(fmt.Sprintf("panic=%v", panics), func(t *testing.T) {
			a7PanicInstead.Store(panics)
			defer a7PanicInstead.Store(false)
			j := newA7Journal()
			cl := &a7Closes{bErr: map[int]error{}, bSeen: map[int]bool{}}
			clock := &a7Clock{}
			const min, max = time.Millisecond, time.Hour
			p, app := atkStart[a7ABC](t, "a7goexitbackoff",
				workerpool.Workers(1), workerpool.MaxTasksPerWorker(1),
				workerpool.RestartBackoff(min, max),
				workerpool.WithClock(clock),
				workerpool.Events(cl.event),
				a7Resources(j, func(w W) bool { return w.Generation == 0 }))
			genOf := make([]int, 0, 4)
			a7Within(t, "4 tasks", a7Hang, func() {
				for range 4 {
					if err := p.Do(context.Background(), func(_ context.Context, r a7ABC) error {
						genOf = append(genOf, r.W.Generation)
						return nil
					}); err != nil {
						t.Errorf("Do = %v", err)
					}
				}
			})
			s := p.Stats()
			a7Within(t, "app.Stop", a7Hang, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = app.Stop(ctx)
			})
			clock.mu.Lock()
			waits := append([]time.Duration(nil), clock.waits...)
			clock.mu.Unlock()
			t.Logf("tasks ran on generations %v; clock waits %v; stats %+v", genOf, waits, s)
			cl.mu.Lock()
			for _, r := range cl.rebuilt {
				t.Logf("rebuilt: gen %d reason %q cause %v", r.Worker.Generation, r.Reason, r.Cause)
			}
			cl.mu.Unlock()
			for _, d := range waits {
				if d > min {
					t.Errorf("the worker waited %v (RestartBackoff's max is %v) though no open failed; the first wait is \"about min\" (%v)", d, max, min)
				}
			}
			// Every rebuild here is for MaxTasksPerWorker: "Recycles counts rebuilds
			// for MaxTasksPerWorker or MaxWorkerAge"; Restarts (which MaxRestarts
			// counts) are after "a panic, a Goexit, ErrBroken or a failed check" of a task.
			if s.Restarts != 0 {
				t.Errorf("Stats.Restarts = %d (Recycles %d): a recycle whose cleanup called Goexit counts as a restart", s.Restarts, s.Recycles)
			}
			// MaxTasksPerWorker(1): each task on a fresh generation, none thrown away.
			for i, g := range genOf {
				if g != i {
					t.Errorf("task %d ran on generation %d, want %d (a generation opened and closed without a task)", i, g, i)
					break
				}
			}
			atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := j.counts(); return o == c })
			j.check(t, false)
		})
	}
}
