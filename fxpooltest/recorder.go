package fxpooltest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// A Recorder records the lifecycle events of pools — every open and close
// of a per-worker resource, of a worker's generation of resources, and the
// pools' starts and stops — and checks the teardown guarantees on them
// with [Recorder.Verify]. It learns everything from the pools' events (see
// workerpool.Events): nothing wraps the user's constructors.
//
// One Recorder may record several pools: events name their pool. A
// Recorder is safe for concurrent use; the zero Recorder is not usable,
// make one with [NewRecorder].
type Recorder struct {
	mu        sync.Mutex
	log       []entry
	noCleanup map[string]bool
}

// entry is an event, or an app-scoped close recorded by Mark.
type entry struct {
	e    workerpool.Event
	mark string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{noCleanup: map[string]bool{}} }

// Option returns the pool option that feeds the recorder:
// workerpool.Events(r.Record). A pool may take several Events options,
// the app's own beside it: each gets every event.
func (r *Recorder) Option() workerpool.Option { return workerpool.Events(r.Record) }

// Record records one event. It does not block on anything but the
// recorder's lock.
func (r *Recorder) Record(e workerpool.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, entry{e: e})
}

// Mark records that the app-scoped resource called name closed now: call
// it from that resource's own OnStop hook, or its cleanup. [Recorder.Verify]
// then checks that it came after every close and stop the recorder saw,
// and after every pool that started had stopped, as fx's reverse stop
// order promises for resources that the pools were built from. Mark
// cannot tell which pools use the resource: give the recorder only the
// pools that do.
func (r *Recorder) Mark(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, entry{mark: name})
}

// NoCleanup tells the recorder that the per-worker resources of these
// names have nothing to close — no cleanup and no Close method — so that
// opening them without closing them is right. Events cannot tell: call it
// before Verify.
func (r *Recorder) NoCleanup(names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		r.noCleanup[n] = true
	}
}

// Events returns a copy of the events recorded so far, in the order they
// were recorded.
func (r *Recorder) Events() []workerpool.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []workerpool.Event
	for _, en := range r.log {
		if en.e != nil {
			out = append(out, en.e)
		}
	}
	return out
}

// Verify reports through t.Errorf every broken teardown guarantee among
// the events recorded so far; call it once the pools have stopped. It
// checks that:
//
//   - each resource that opened closed exactly once, before its worker's
//     generation closed or its failed open returned (the rollback);
//   - no resource whose open failed was closed;
//   - within each worker's generation, resources closed in the reverse of
//     the order they opened;
//   - each [Recorder.Mark] came after every close and stop the recorder
//     saw, and after every pool that started had stopped.
//
// A recorder that saw no event at all is reported too: it was probably
// not given to a pool. Verify does not stop the test.
func (r *Recorder) Verify(t TB) {
	helper(t)
	r.mu.Lock()
	log := slices.Clone(r.log)
	noCleanup := make(map[string]bool, len(r.noCleanup))
	for n := range r.noCleanup {
		noCleanup[n] = true
	}
	r.mu.Unlock()
	for _, v := range check(log, noCleanup) {
		t.Errorf("fxpooltest: %s", v)
	}
}

// gen is one generation of one worker: the unit whose resources close in
// reverse order.
type gen struct {
	pool   string
	id, no int
}

func genOf(w resources.Worker) gen { return gen{w.Pool, w.ID, w.Generation} }

func (g gen) String() string {
	return fmt.Sprintf("pool %q worker %d generation %d", g.pool, g.id, g.no)
}

// genState is what check knows of one generation as it replays the log.
type genState struct {
	open   []string       // resources open, with something to close, in open order
	failed map[string]int // resources whose open failed
	closed map[string]int // how many times each resource closed
}

// check replays a log and returns the broken guarantees, in the order they
// show.
func check(log []entry, noCleanup map[string]bool) []string {
	if len(log) == 0 {
		return []string{"the recorder saw no event: give rec.Option() to the pool"}
	}
	var out []string
	report := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	gens := map[gen]*genState{}
	state := func(g gen) *genState {
		s := gens[g]
		if s == nil {
			s = &genState{failed: map[string]int{}, closed: map[string]int{}}
			gens[g] = s
		}
		return s
	}
	// leftovers reports the resources of g still open when they should
	// all have closed, and forgets them.
	leftovers := func(g gen, when string) {
		s := state(g)
		for _, name := range slices.Backward(s.open) {
			report("%v: resource %q was still open %s", g, name, when)
		}
		s.open = nil
	}

	started, stopped := map[string]bool{}, map[string]bool{}
	var marks []int
	for i, en := range log {
		switch e := en.e.(type) {
		case nil:
			marks = append(marks, i)
		case workerpool.ResourceOpened:
			s := state(genOf(e.Worker))
			switch {
			case e.Err != nil:
				s.failed[e.Resource]++
				continue
			case !noCleanup[e.Resource]:
				s.open = append(s.open, e.Resource)
			}
			// A generation whose open failed may be opened again.
			delete(s.failed, e.Resource)
			delete(s.closed, e.Resource)
		case workerpool.ResourceClosed:
			g := genOf(e.Worker)
			s := state(g)
			j := lastIndex(s.open, e.Resource)
			switch {
			case j >= 0 && j == len(s.open)-1:
				// The last one opened: the right order.
			case j >= 0:
				later := slices.Clone(s.open[j+1:])
				slices.Reverse(later)
				report("%v: resource %q closed before %s, which opened after it", g, e.Resource, quoteAll(later))
			case s.failed[e.Resource] > 0:
				report("%v: resource %q closed, but its open had failed", g, e.Resource)
			case s.closed[e.Resource] > 0:
				report("%v: resource %q closed %d times", g, e.Resource, s.closed[e.Resource]+1)
			case noCleanup[e.Resource]:
				report("%v: resource %q closed, but NoCleanup says it has nothing to close", g, e.Resource)
			default:
				report("%v: resource %q closed, but had not opened", g, e.Resource)
			}
			if j >= 0 {
				s.open = slices.Delete(s.open, j, j+1)
			}
			s.closed[e.Resource]++
		case workerpool.WorkerOpened:
			if e.Err != nil {
				leftovers(genOf(e.Worker), "after its worker's open failed (the rollback missed it)")
			}
		case workerpool.WorkerClosed:
			leftovers(genOf(e.Worker), "when its worker's generation closed")
		case workerpool.PoolStarted:
			if e.Err == nil {
				started[e.Pool] = true
			}
		case workerpool.PoolStopped:
			stopped[e.Pool] = true
		}
	}
	for _, g := range sortedGens(gens) {
		leftovers(g, "at the end: it never closed")
	}
	for _, m := range marks {
		name := log[m].mark
		if after := firstCloseAfter(log, m); after != "" {
			report("app-scoped %q closed before %s", name, after)
			continue
		}
		for _, pool := range sortedKeys(started) {
			if !stopped[pool] {
				report("app-scoped %q closed before pool %q stopped", name, pool)
			}
		}
	}
	return out
}

// firstCloseAfter describes the first close or stop recorded after index
// m, or returns "".
func firstCloseAfter(log []entry, m int) string {
	for _, en := range log[m+1:] {
		switch e := en.e.(type) {
		case workerpool.ResourceClosed:
			return fmt.Sprintf("%v: resource %q closed", genOf(e.Worker), e.Resource)
		case workerpool.WorkerClosed:
			return fmt.Sprintf("%v closed", genOf(e.Worker))
		case workerpool.PoolStopped:
			return fmt.Sprintf("pool %q stopped", e.Pool)
		}
	}
	return ""
}

// lastIndex returns the index of the last name in names, or -1.
func lastIndex(names []string, name string) int {
	for i, n := range slices.Backward(names) {
		if n == name {
			return i
		}
	}
	return -1
}

func sortedGens(m map[gen]*genState) []gen {
	gens := make([]gen, 0, len(m))
	for g := range m {
		gens = append(gens, g)
	}
	slices.SortFunc(gens, func(a, b gen) int {
		return cmp.Or(strings.Compare(a.pool, b.pool), cmp.Compare(a.id, b.id), cmp.Compare(a.no, b.no))
	})
	return gens
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
