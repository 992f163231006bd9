package faulttest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fxpool/fxpool/resources"
)

// res is one opened (or half-opened) resource instance: node k of one
// worker's generation. Every instance a constructor makes is registered with
// the trial's recorder before the constructor returns.
type res struct {
	tr      *trial
	id      int
	node    int
	worker  int
	gen     int
	deps    []*res // the instances it was built from
	openSeq int64

	// hasCleanup: the pool must close it exactly once. openFailed: its
	// constructor returned an error (with a value and a cleanup, on
	// purpose), so the pool must never close it.
	hasCleanup bool
	openFailed bool
	fault      cleanupFault

	checks     atomic.Int32 // health checks run on it
	closes     atomic.Int32
	closeStart atomic.Int64
	closeEnd   atomic.Int64
	inUse      atomic.Int32 // tasks using it right now
}

// get lets any of the menu types give back its *res.
func (r *res) get() *res { return r }

type holder interface{ get() *res }

// closeVia records a close and injects the cleanup's fault.
func (r *res) closeVia(how via) error {
	tr := r.tr
	start := tr.seq.Add(1)
	if n := r.closes.Add(1); n != 1 {
		tr.violate("double-close", "%v closed %d times (this time via %v)", r, n, how)
	} else {
		r.closeStart.Store(start)
	}
	switch {
	case r.openFailed:
		tr.violate("close-of-failed-open", "%v closed although its constructor failed", r)
	case !r.hasCleanup:
		tr.violate("close-without-cleanup", "%v closed via %v although it has no cleanup", r, how)
	}
	if n := r.inUse.Load(); n != 0 {
		tr.violate("close-while-in-use", "%v closed while %d tasks use it", r, n)
	}
	end := func() { r.closeEnd.Store(tr.seq.Add(1)) }
	switch r.fault {
	case cleanupErr:
		tr.count("cleanup-error")
		end()
		return fmt.Errorf("faulttest: %v: injected close error", r)
	case cleanupPanic:
		tr.count("cleanup-panic")
		end()
		panic(fmt.Sprintf("faulttest: %v: injected close panic", r))
	case cleanupHang:
		if tr.hangAnywhere || closed(tr.poolStartDone) {
			tr.count("cleanup-hang")
			<-tr.release
		} else {
			tr.count("cleanup-hang-suppressed")
		}
	}
	end()
	return nil
}

func (r *res) String() string {
	return fmt.Sprintf("resource %s#%d (worker %d, generation %d)", nodeName(r.node), r.id, r.worker, r.gen)
}

func nodeName(k int) string { return fmt.Sprintf("N%d", k) }

// register records a new instance, checking that its dependencies are open
// and belong to the same worker and generation.
func (tr *trial) register(r *res, w resources.Worker) {
	r.openSeq = tr.seq.Add(1)
	deps := r.deps
	if w.Pool != poolName {
		tr.violate("wrong-worker-identity", "%v got worker identity of pool %q", r, w.Pool)
	}
	for _, d := range deps {
		if d.closes.Load() != 0 {
			tr.violate("open-after-dependency-closed", "%v opened with %v, already closed", r, d)
		}
		if d.worker != w.ID || d.gen != w.Generation {
			tr.violate("dependency-from-other-worker", "%v opened with %v", r, d)
		}
	}
	tr.mu.Lock()
	r.id = len(tr.all)
	tr.all = append(tr.all, r)
	tr.mu.Unlock()
}

// violate records a broken guarantee.
func (tr *trial) violate(kind, format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.violations = append(tr.violations, violation{kind, fmt.Sprintf(format, args...)})
}

type violation struct{ kind, msg string }

func (tr *trial) count(kind string) { tr.stats.add(kind, 1) }

// counters counts events by kind; safe for concurrent use.
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) add(kind string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[kind] += n
}

func (c *counters) merge(o *counters) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range o.m {
		c.add(k, v)
	}
}

func (c *counters) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-34s %d\n", k, c.m[k])
	}
	return b.String()
}
