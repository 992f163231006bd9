// Package fakeclock is a manual clock for tests: time moves only when the
// test says so.
package fakeclock

import (
	"sync"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// Clock is a [workerpool.Clock] whose time moves only with [Clock.Add].
// It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	notify chan struct{} // closed and replaced whenever a timer is added
}

// New returns a clock set to an arbitrary fixed time.
func New() *Clock {
	return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), notify: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f once the clock has been moved d forward.
func (c *Clock) AfterFunc(d time.Duration, f func()) workerpool.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	close(c.notify)
	c.notify = make(chan struct{})
	return t
}

// Add moves the clock forward by d and calls every pending function that
// comes due meanwhile, on the caller's goroutine, in the order they come
// due (those due at the same time, in the order they were set), with the
// clock at each one's time: as time.AfterFunc would. A function due within
// d that a called function sets is called too.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		next := -1
		for i, t := range c.timers {
			if !t.at.After(end) && (next < 0 || t.at.Before(c.timers[next].at)) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		t := c.timers[next]
		c.timers = append(c.timers[:next:next], c.timers[next+1:]...)
		if t.at.After(c.now) {
			c.now = t.at
		}
		left := end.Sub(c.now)
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
		// Adds made meanwhile — by f, or at once by other goroutines —
		// moved the clock: what is left of this one comes on top, so
		// that each moves it its whole duration and time never goes back.
		end = c.now.Add(left)
	}
	c.now = end
	c.mu.Unlock()
}

// Pending returns the durations of the timers that have not fired or been
// stopped, in the order they were set.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.d
	}
	return out
}

// Changed returns a channel that is closed when the next timer is set.
func (c *Clock) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notify
}

type timer struct {
	c  *Clock
	at time.Time
	d  time.Duration
	f  func()
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
