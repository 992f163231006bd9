package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// QueueSize is the queue length of every pool that has one: the floor,
// fxpool and pond.
const QueueSize = 1024

// Conn is a connection-like resource: owned by one user at a time, closed
// when its owner is done with it.
type Conn struct {
	ID     int
	n      uint64
	closed bool
}

// Use does what a task does with its connection: a trivial update.
func (c *Conn) Use() { c.n++ }

// Close marks the connection closed.
func (c *Conn) Close() error {
	c.closed = true
	return nil
}

var sinkFlag atomic.Bool

// Sink keeps x alive, so that the compiler cannot remove the work that made
// it. It costs a compare.
//
//go:noinline
func Sink(x uint64) {
	if x == 0x9e3779b97f4a7c15 {
		sinkFlag.Store(true)
	}
}

// spin runs n steps of a linear congruential generator: about a nanosecond
// each, without memory traffic or system calls.
//
//go:noinline
func spin(n int) uint64 {
	x := uint64(n)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var (
	calibrateOnce sync.Once
	spinPerMicro  int
)

// SpinMicro returns the number of spin steps that take about 1µs on this
// machine, measured once.
func SpinMicro() int {
	calibrateOnce.Do(func() {
		const steps = 20_000_000
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			Sink(spin(steps))
			if d := time.Since(start); d < best {
				best = d
			}
		}
		spinPerMicro = max(1, int(int64(steps)*int64(time.Microsecond)/int64(best)))
	})
	return spinPerMicro
}

// Work is a task's body: trivial when n is 0, otherwise n spin steps.
func Work(n int) {
	if n == 0 {
		Sink(0)
		return
	}
	Sink(spin(n))
}
