package workerpool_test

// Helpers of the attack16 lifecycle tests: a three-resource chain per worker
// (A <- B <- C, C depending on B depending on A, A on an app-scoped store),
// whose constructors and cleanups log every call, in one sequence with the
// pool's events, and call hooks that a test sets to block, fail, panic or
// Goexit at a chosen moment.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// a16lGuard is the hang guard of every wait of these tests.
const a16lGuard = 30 * time.Second

type a16lEntry struct {
	seq int
	op  string // "try", "open", "openfail", "close", "ev", "mark", "task"
	res string
	w   resources.Worker
	ev  workerpool.Event
	msg string
}

func (e a16lEntry) String() string {
	if e.op == "ev" {
		return fmt.Sprintf("#%d ev %T %+v", e.seq, e.ev, e.ev)
	}
	return fmt.Sprintf("#%d %s %s w%d/g%d %s", e.seq, e.op, e.res, e.w.ID, e.w.Generation, e.msg)
}

type a16lStore struct{ closed atomic.Bool }

type a16lA struct {
	w      resources.Worker
	closed atomic.Bool
}
type a16lB struct {
	a      *a16lA
	w      resources.Worker
	closed atomic.Bool
}
type a16lC struct {
	b      *a16lB
	w      resources.Worker
	closed atomic.Bool
}

// a16lDeps is the usual task parameter: the whole chain.
type a16lDeps struct {
	fx.In
	C *a16lC
	W resources.Worker
}

type a16lHookFn func(ctx context.Context, res string, w resources.Worker) error

// a16lH is one test's harness.
type a16lH struct {
	mu         sync.Mutex
	seq        int
	entries    []a16lEntry
	violations []string
	changed    chan struct{} // closed and replaced at every entry

	// ignoreStore: the test lets a constructor that ignores its context
	// outlive the start, so fx may close the store first (documented).
	ignoreStore atomic.Bool

	openHook  atomic.Pointer[a16lHookFn]
	closeHook atomic.Pointer[a16lHookFn]
	checkHook atomic.Pointer[a16lHookFn]

	// sink, if set before the app is built, sees every entry as it is
	// added (a child process writes them to a file).
	sink func(a16lEntry)
}

func a16lNew() *a16lH {
	return &a16lH{changed: make(chan struct{})}
}

func (h *a16lH) setOpen(f a16lHookFn)  { h.openHook.Store(&f) }
func (h *a16lH) setClose(f a16lHookFn) { h.closeHook.Store(&f) }
func (h *a16lH) setCheck(f a16lHookFn) { h.checkHook.Store(&f) }

func (h *a16lH) add(e a16lEntry) {
	h.mu.Lock()
	h.seq++
	e.seq = h.seq
	h.entries = append(h.entries, e)
	close(h.changed)
	h.changed = make(chan struct{})
	if h.sink != nil {
		h.sink(e)
	}
	h.mu.Unlock()
}

func (h *a16lH) violate(format string, args ...any) {
	h.mu.Lock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *a16lH) snapshot() []a16lEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]a16lEntry(nil), h.entries...)
}

func (h *a16lH) dump() string {
	var b strings.Builder
	for _, e := range h.snapshot() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// waitFor waits until cond holds on the entries, or fails the test after
// the hang guard.
func (h *a16lH) waitFor(t *testing.T, what string, cond func([]a16lEntry) bool) {
	t.Helper()
	deadline := time.NewTimer(a16lGuard)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		es := append([]a16lEntry(nil), h.entries...)
		ch := h.changed
		h.mu.Unlock()
		if cond(es) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("hang guard: still waiting for %s after %v; log:\n%s", what, a16lGuard, h.dump())
		}
	}
}

func (h *a16lH) event(e workerpool.Event) { h.add(a16lEntry{op: "ev", ev: e}) }

func (h *a16lH) mark(name string) { h.add(a16lEntry{op: "mark", res: name}) }

func (h *a16lH) callOpen(ctx context.Context, res string, w resources.Worker) error {
	if f := h.openHook.Load(); f != nil && *f != nil {
		return (*f)(ctx, res, w)
	}
	return nil
}

func (h *a16lH) callClose(ctx context.Context, res string, w resources.Worker) error {
	if f := h.closeHook.Load(); f != nil && *f != nil {
		return (*f)(ctx, res, w)
	}
	return nil
}

// store provides the app-scoped store, whose OnStop is marked.
func (h *a16lH) store() fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) *a16lStore {
		s := &a16lStore{}
		lc.Append(fx.StopHook(func() {
			s.closed.Store(true)
			h.mark("store")
		}))
		return s
	})
}

// resources declares the chain A <- B <- C.
func (h *a16lH) resources() workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(ctx context.Context, s *a16lStore, w resources.Worker) (*a16lA, func(context.Context) error, error) {
			h.add(a16lEntry{op: "try", res: "A", w: w})
			if s.closed.Load() {
				h.violate("A of %v opened on a closed store", w)
			}
			if err := h.callOpen(ctx, "A", w); err != nil {
				h.add(a16lEntry{op: "openfail", res: "A", w: w, msg: err.Error()})
				return nil, nil, err
			}
			a := &a16lA{w: w}
			h.add(a16lEntry{op: "open", res: "A", w: w})
			return a, func(cctx context.Context) error {
				h.add(a16lEntry{op: "close", res: "A", w: w})
				if s.closed.Load() && !h.ignoreStore.Load() {
					h.violate("A of %v closed after the store", w)
				}
				if a.closed.Swap(true) {
					h.violate("A of %v closed twice", w)
				}
				return h.callClose(cctx, "A", w)
			}, nil
		}, resources.Name("A")),
		resources.PerWorker(func(ctx context.Context, a *a16lA, w resources.Worker) (*a16lB, func(context.Context) error, error) {
			h.add(a16lEntry{op: "try", res: "B", w: w})
			if a.w != w {
				h.violate("B of %v got the A of %v", w, a.w)
			}
			if a.closed.Load() {
				h.violate("B of %v got a closed A", w)
			}
			if err := h.callOpen(ctx, "B", w); err != nil {
				h.add(a16lEntry{op: "openfail", res: "B", w: w, msg: err.Error()})
				return nil, nil, err
			}
			b := &a16lB{a: a, w: w}
			h.add(a16lEntry{op: "open", res: "B", w: w})
			return b, func(cctx context.Context) error {
				h.add(a16lEntry{op: "close", res: "B", w: w})
				if a.closed.Load() {
					h.violate("B of %v closed after its A", w)
				}
				if b.closed.Swap(true) {
					h.violate("B of %v closed twice", w)
				}
				return h.callClose(cctx, "B", w)
			}, nil
		}, resources.Name("B")),
		resources.PerWorker(func(ctx context.Context, b *a16lB, w resources.Worker) (*a16lC, func(context.Context) error, error) {
			h.add(a16lEntry{op: "try", res: "C", w: w})
			if b.w != w {
				h.violate("C of %v got the B of %v", w, b.w)
			}
			if b.closed.Load() {
				h.violate("C of %v got a closed B", w)
			}
			if err := h.callOpen(ctx, "C", w); err != nil {
				h.add(a16lEntry{op: "openfail", res: "C", w: w, msg: err.Error()})
				return nil, nil, err
			}
			c := &a16lC{b: b, w: w}
			h.add(a16lEntry{op: "open", res: "C", w: w})
			return c, func(cctx context.Context) error {
				h.add(a16lEntry{op: "close", res: "C", w: w})
				if b.closed.Load() {
					h.violate("C of %v closed after its B", w)
				}
				if c.closed.Swap(true) {
					h.violate("C of %v closed twice", w)
				}
				return h.callClose(cctx, "C", w)
			}, nil
		}, resources.Name("C"), resources.Check(func(ctx context.Context, c *a16lC) error {
			h.add(a16lEntry{op: "check", res: "C", w: c.w})
			if c.closed.Load() {
				h.violate("check of %v on a closed C", c.w)
			}
			if f := h.checkHook.Load(); f != nil && *f != nil {
				return (*f)(ctx, "C", c.w)
			}
			return nil
		})),
	)
}

// checkTask checks, inside a task, that the resources it got are its
// worker's own and open.
func (h *a16lH) checkTask(d a16lDeps) {
	c := d.C
	if c.closed.Load() || c.b.closed.Load() || c.b.a.closed.Load() {
		h.violate("task on %v got a closed resource", d.W)
	}
	if c.w != d.W || c.b.w != d.W || c.b.a.w != d.W {
		h.violate("task on %v got resources of %v/%v/%v", d.W, c.w, c.b.w, c.b.a.w)
	}
}

// app builds an fx app with the store, a pool named "p16" of the chain
// with the options given, and populates *pool.
func (h *a16lH) app(pool **workerpool.Pool[a16lDeps], opts []workerpool.Option, extra ...fx.Option) *fx.App {
	all := append([]workerpool.Option{h.resources(), workerpool.Events(h.event)}, opts...)
	fxopts := []fx.Option{
		fx.NopLogger,
		fx.Supply(zap.NewNop()),
		h.store(),
		workerpool.Provide[a16lDeps]("p16", all...),
		fx.Populate(pool),
	}
	return fx.New(append(fxopts, extra...)...)
}

type a16lKey struct {
	pool, res string
	id, gen   int
}

func a16lKeyOf(e a16lEntry) a16lKey {
	return a16lKey{pool: e.w.Pool, res: e.res, id: e.w.ID, gen: e.w.Generation}
}

// openNow lists the resources opened and not closed.
func a16lOpenNow(es []a16lEntry) []a16lKey {
	n := map[a16lKey]int{}
	for _, e := range es {
		switch e.op {
		case "open":
			n[a16lKeyOf(e)]++
		case "close":
			n[a16lKeyOf(e)]--
		}
	}
	var out []a16lKey
	for k, v := range n {
		if v != 0 {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func a16lCount(es []a16lEntry, op, res string, id int) int {
	n := 0
	for _, e := range es {
		if e.op == op && (res == "" || e.res == res) && (id < 0 || e.w.ID == id) {
			n++
		}
	}
	return n
}

var a16lDepsOf = map[string][]string{"B": {"A"}, "C": {"B"}}

// checkLifecycle checks the entries so far: per worker generation, each
// resource is never opened while open nor closed unless open (a failed
// attempt's retry reopens the same generation, after its rollback); every
// dependency is open when its dependent opens and still open when it closes;
// within a worker ID no two generations are open at once; the store closes
// after every per-worker close; and no violation was seen by the
// constructors and cleanups. If balanced, nothing may be left open.
func (h *a16lH) checkLifecycle(t *testing.T, balanced bool) {
	t.Helper()
	es := h.snapshot()
	open := map[a16lKey]bool{}
	opens := map[a16lKey]int{}
	closes := map[a16lKey]int{}
	type slot struct {
		pool string
		id   int
	}
	genOpen := map[slot]map[int]int{} // open resources per generation of a slot
	storeClosed := false
	bad := false
	errf := func(format string, args ...any) {
		t.Errorf(format, args...)
		bad = true
	}
	for _, e := range es {
		k := a16lKeyOf(e)
		sl := slot{e.w.Pool, e.w.ID}
		switch e.op {
		case "open":
			if open[k] {
				errf("#%d: %v opened while already open", e.seq, k)
			}
			for _, d := range a16lDepsOf[e.res] {
				dk := k
				dk.res = d
				if !open[dk] {
					errf("#%d: %v opened without its dependency %s open", e.seq, k, d)
				}
			}
			if genOpen[sl] == nil {
				genOpen[sl] = map[int]int{}
			}
			for g, n := range genOpen[sl] {
				if g != e.w.Generation && n > 0 {
					errf("#%d: %v opened while generation %d of the same worker still has %d open", e.seq, k, g, n)
				}
			}
			genOpen[sl][e.w.Generation]++
			open[k] = true
			opens[k]++
		case "close":
			if !open[k] {
				errf("#%d: %v closed but not open (opened %d, closed %d before)", e.seq, k, opens[k], closes[k])
			}
			for _, d := range a16lDepsOf[e.res] {
				dk := k
				dk.res = d
				if !open[dk] {
					errf("#%d: %v closed after its dependency %s", e.seq, k, d)
				}
			}
			if storeClosed && !h.ignoreStore.Load() {
				errf("#%d: %v closed after the app-scoped store", e.seq, k)
			}
			if genOpen[sl] != nil {
				genOpen[sl][e.w.Generation]--
			}
			open[k] = false
			closes[k]++
		case "mark":
			if e.res == "store" {
				storeClosed = true
			}
		}
	}
	if balanced {
		if left := a16lOpenNow(es); len(left) != 0 {
			errf("resources opened and never closed: %v", left)
		}
	}
	h.mu.Lock()
	vs := append([]string(nil), h.violations...)
	h.mu.Unlock()
	for _, v := range vs {
		errf("violation: %s", v)
	}
	if bad {
		t.Logf("log:\n%s", h.dump())
	}
}

// events returns the pool events of type T recorded so far.
func a16lEvents[T workerpool.Event](h *a16lH) []T {
	var out []T
	for _, e := range h.snapshot() {
		if e.op == "ev" {
			if v, ok := e.ev.(T); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// stopCtx returns a context with the given budget.
func a16lCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// await waits for ch or fails after the guard.
func a16lAwait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(a16lGuard):
		t.Fatalf("hang guard: %s did not happen within %v", what, a16lGuard)
		var zero T
		return zero
	}
}

// poll waits until cond() holds, or fails after the guard. Used only for
// state that no event announces (Serving).
func a16lPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(a16lGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("hang guard: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errA16lInjected = errors.New("a16l: injected")

// hasOp reports whether an entry with op, res and worker ID is present.
func a16lHas(op, res string, id int) func([]a16lEntry) bool {
	return func(es []a16lEntry) bool { return a16lCount(es, op, res, id) > 0 }
}
