package bench

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// SlowConn is a [Conn] whose open and close take slowOpen each.
type SlowConn struct{ Conn }

const slowOpen = 10 * time.Millisecond

func openSlowConn(id int) *SlowConn {
	time.Sleep(slowOpen)
	return &SlowConn{Conn{ID: id}}
}

// Close sleeps slowOpen, then closes the connection.
func (c *SlowConn) Close() error {
	time.Sleep(slowOpen)
	return c.Conn.Close()
}

func closeSlowConn(c *SlowConn) { _ = c.Close() }

// lifecycleCase is one start+stop figure.
type lifecycleCase struct {
	workers int
	slow    bool // each open and each close takes slowOpen
}

func (c lifecycleCase) String() string {
	open := "0"
	if c.slow {
		open = slowOpen.String()
	}
	return fmt.Sprintf("workers=%d/open=%s", c.workers, open)
}

// BenchmarkStartStop: start a pool of N workers, each opening its own
// resource, until every worker is ready; then stop it, each worker closing
// its resource, until every worker is gone. One op is one start and one
// stop; start-ns/op and stop-ns/op split it (fxpool's ns/op also counts
// fx.New). The floor is goroutines that open, signal ready, wait on a
// channel, close.
func BenchmarkStartStop(b *testing.B) {
	cases := []lifecycleCase{{1000, false}, {10000, false}, {1000, true}}
	impls := []impl[func(*testing.B, lifecycleCase)]{
		{"floor", startStopFloor},
		{"fxpool", startStopFxpool},
	}
	for _, c := range cases {
		b.Run(c.String(), func(b *testing.B) {
			for _, im := range impls {
				b.Run("impl="+im.name, func(b *testing.B) {
					b.ReportAllocs()
					im.run(b, c)
				})
			}
		})
	}
}

// phases sums the time of the start and stop phases of a benchmark and
// reports them per op.
type phases struct{ start, stop time.Duration }

func (p *phases) report(b *testing.B) {
	b.ReportMetric(float64(p.start.Nanoseconds())/float64(b.N), "start-ns/op")
	b.ReportMetric(float64(p.stop.Nanoseconds())/float64(b.N), "stop-ns/op")
}

func startStopFloor(b *testing.B, c lifecycleCase) {
	var ph phases
	for b.Loop() {
		t0 := time.Now()
		if c.slow {
			p := StartResourcePool(c.workers, QueueSize, openSlowConn, closeSlowConn)
			t1 := time.Now()
			p.Stop()
			ph.start += t1.Sub(t0)
			ph.stop += time.Since(t1)
			continue
		}
		p := StartResourcePool(c.workers, QueueSize, openConn, closeConn)
		t1 := time.Now()
		p.Stop()
		ph.start += t1.Sub(t0)
		ph.stop += time.Since(t1)
	}
	ph.report(b)
}

// idleWorkers is the size of the idle-memory figure; -short scales it down
// so that CI stays fast.
func idleWorkers() int {
	if testing.Short() {
		return 10_000
	}
	return 100_000
}

// BenchmarkIdleMemory: the memory a started, idle worker holds, heap and
// stack, measured with runtime.ReadMemStats after a GC before the pool
// starts and after every worker is ready; reported as bytes/worker.
func BenchmarkIdleMemory(b *testing.B) {
	n := idleWorkers()
	impls := []impl[func(*testing.B, int) (stop func())]{
		{"floor", idleFloor},
		{"fxpool", idleFxpool},
	}
	b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
		for _, im := range impls {
			b.Run("impl="+im.name, func(b *testing.B) {
				b.ReportAllocs()
				var total int64
				for b.Loop() {
					before := inUse()
					stop := im.run(b, n)
					total += inUse() - before
					stop()
				}
				b.ReportMetric(float64(total)/float64(b.N)/float64(n), "bytes/worker")
			})
		}
	})
}

// inUse is the heap and stack memory in use after a full GC.
func inUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

func idleFloor(_ *testing.B, n int) func() {
	return StartResourcePool(n, QueueSize, openConn, closeConn).Stop
}
