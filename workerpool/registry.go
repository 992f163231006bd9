package workerpool

import (
	"slices"
	"sync"
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
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(name string, stats func() Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pools = append(r.pools, registered{name: name, stats: stats})
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
