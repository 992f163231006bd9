package fxpooltest

import (
	"context"
	"time"

	"github.com/fxpool/fxpool/internal/fakeclock"
	"github.com/fxpool/fxpool/workerpool"
)

// Clock is a workerpool.Clock whose time moves only when the test calls
// [Clock.Add]: give it to a pool with [Clock.Option] to drive MaxWorkerAge
// recycling, restart backoff and Elastic idling without sleeping. It is
// safe for concurrent use.
type Clock struct{ c *fakeclock.Clock }

// NewClock returns a clock set to a fixed time.
func NewClock() *Clock { return &Clock{fakeclock.New()} }

// Option returns the pool option that makes the pool use the clock:
// workerpool.WithClock(c).
func (c *Clock) Option() workerpool.Option { return workerpool.WithClock(c) }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.c.Now() }

// AfterFunc arranges for f to be called once the clock has been moved d
// forward, unless the returned Timer is stopped first.
func (c *Clock) AfterFunc(d time.Duration, f func()) workerpool.Timer {
	return c.c.AfterFunc(d, f)
}

// Add moves the clock forward by d and calls, in order, every function
// that has come due, on the caller's goroutine, before it returns. What
// the pool does next (a worker's rebuild, a retirement) happens on the
// pool's goroutines: wait for its events to see it done.
func (c *Clock) Add(d time.Duration) { c.c.Add(d) }

// WaitTimers blocks until at least n timers are pending — set and neither
// fired nor stopped — and returns nil, or returns ctx's cause if ctx ends
// first. Call it before Add, so that time moves only once the pool is
// waiting on it.
func (c *Clock) WaitTimers(ctx context.Context, n int) error {
	for {
		changed := c.c.Changed()
		if len(c.c.Pending()) >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
