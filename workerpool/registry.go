package workerpool

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Registry lists the pools of an app, for health checks and metrics.
// fxpool.Module provides one; every pool built in that app registers itself
// with it. A Registry is safe for concurrent use; the zero value is empty
// and ready for use.
type Registry struct {
	mu    sync.Mutex
	pools []registered
}

type registered struct {
	name  string
	stats func() Stats
	// guard arms the pool's StopGuard, whose stop first calls before;
	// stopGuarded stops an armed pool (or waits for its stop under way).
	guard       func(deadline time.Time, before func())
	stopGuarded func(deadline time.Time)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// add registers a pool. Names are unique in an app: Stats is by name.
func (r *Registry) add(name string, stats func() Stats, guard func(time.Time, func()), stopGuarded func(time.Time)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pools {
		if p.name == name {
			return fmt.Errorf("another pool of this app is named %q: pool names must be unique", name)
		}
	}
	r.pools = append(r.pools, registered{name: name, stats: stats, guard: guard, stopGuarded: stopGuarded})
	return nil
}

// Names returns the names of the registered pools, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(r.pools))
	for i, p := range r.pools {
		names[i] = p.name
	}
	slices.Sort(names)
	return names
}

// Stats returns the [Stats] of every registered pool, by pool name.
func (r *Registry) Stats() map[string]Stats {
	r.mu.Lock()
	pools := slices.Clone(r.pools)
	r.mu.Unlock()
	out := make(map[string]Stats, len(pools))
	for _, p := range pools {
		out[p.name] = p.stats()
	}
	return out
}

// guard tells every registered pool the deadline of the app's stop; see
// [StopGuard]. A pool that StopGuard stops first stops those registered
// after it, the last first, as fx would: pools register as they are built,
// and one built after another may use it (its constructor took it), as a
// pool uses the app-scoped resources built before it.
func (r *Registry) guard(deadline time.Time) {
	r.mu.Lock()
	pools := slices.Clone(r.pools)
	r.mu.Unlock()
	for i, p := range pools {
		later := pools[i+1:]
		p.guard(deadline, func() {
			for j := len(later) - 1; j >= 0; j-- {
				later[j].stopGuarded(deadline)
			}
		})
	}
}
