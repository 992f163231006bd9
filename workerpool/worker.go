package workerpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/internal/safe"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/zap"
)

// Worker phases, for Stats and for reports of what a worker is stuck in.
const (
	phaseVacant       int32 = iota // no goroutine: not started, exited, or a free elastic slot
	phaseOpening                   // opening its first resources
	phaseServing                   // waiting for or running tasks
	phaseRebuilding                // replacing its resources
	phaseChecking                  // running its resources' health checks
	phaseClosing                   // closing its resources
	phaseResourceless              // serving with no resources, its reopen given up: it drops what it takes
)

// worker is one slot of the pool and the goroutine that serves in it.
// Fields without atomics belong to that goroutine (or, after a Goexit, to
// its successor).
type worker[R any] struct {
	p  *Pool[R]
	id int

	gen    int // the generation of the resources open or opening
	opens  int // sets of resources opened in this slot
	scope  *plan.Scope[R]
	r      R
	tasks  int       // tasks run since the resources opened
	idling *idling   // for CheckIdle and MaxWorkerAge; nil without both
	run    *startRun // the start that launched it, until its open ends: see openAtStart
	// The close under way, for a cleanup's Goexit: see goexited.
	closeBegan time.Time // when it began, if its event may be heard
	ran        uint64    // tasks run, counted by the worker
	// What rebuilds and Goexits leave for goexited; nil until then. An idle
	// worker's memory is mostly this struct and its goroutine's stack:
	// what few workers need is kept apart. (Fields are ordered so that the
	// struct has no padding to spare.)
	rare *workerRare[R]

	phase     atomic.Int32
	closePrev int32       // the phase the close under way returns to
	expired   atomic.Bool // the resources are older than MaxWorkerAge
	final     bool        // closing for the last time
	busy      bool        // running tasks, as stat says
	grown     bool        // a rebuild grew the goroutine's stack: serve on a fresh one
	// slotted: a slot in use, launched and not yet exited; launches: how
	// many times it was launched. Guarded by elastic.mu in an elastic
	// pool, by the pool's mu in a fixed one.
	slotted  bool
	launches uint32
	thread   int32                         // the OS thread the resources opened on, with LockOSThread
	opening  atomic.Pointer[string]        // the resource being opened, for reports
	closing  atomic.Pointer[plan.Scope[R]] // the scope being closed, for reports
	stat     atomic.Uint64                 // ran<<1 | busy, as last published: see publish
	failed   atomic.Uint64
	panics   atomic.Uint64
	waits    atomic.Uint64 // odd while the worker waits in the queue: see wait

	mu   sync.Mutex
	ctxs *taskCtxs // made, under mu, by the first task that needs it

	err error // teardown error, written before the worker is unslotted
	// The wait of the stop that waits for the worker's exit, told when it
	// exits; nil until a stop waits. Guarded as slotted is.
	waited *exitWait
}

// exitWait is a stop's wait for the exits of the workers it found running:
// one channel for them all, closed by the last to exit.
type exitWait struct {
	left atomic.Int64
	done chan struct{}
}

// exited counts the exit of one of the workers it waits for.
func (e *exitWait) exited() {
	if e.left.Add(-1) == 0 {
		close(e.done)
	}
}

// taskCtxs are the contexts a worker keeps from one task to the next.
type taskCtxs struct {
	cancel context.CancelCauseFunc // the Map's whose task ran last; guarded by the worker's mu
	shared context.Context         // that Map's tasks' context
	// The context of the last task bound to its submitter's (Do, Submit,
	// GoReport, groups), kept for the next one with the same parent: see
	// boundCtx. boundCancel is guarded by the worker's mu.
	bound, boundParent context.Context
	boundCancel        context.CancelCauseFunc
}

// kept returns the worker's taskCtxs, made on first use. Only the
// worker's goroutine calls it.
func (w *worker[R]) kept() *taskCtxs {
	if w.ctxs == nil {
		w.mu.Lock()
		w.ctxs = new(taskCtxs)
		w.mu.Unlock()
	}
	return w.ctxs
}

// idling is what CheckIdle and MaxWorkerAge need of a worker.
type idling struct {
	lastDone time.Time // when the last task ended or the resources opened, for CheckIdle
	aging    Timer     // flags expired once the resources reach MaxWorkerAge
}

// workerRare is what a worker keeps for goexited.
type workerRare[R any] struct {
	cur     task[R] // the task that called Goexit, if any: see exec
	holding task[R] // a copy of the task taken while its worker rebuilds first: see handle
	holds   bool    // holding is a task
	// exitedOpen is the error of an open that a constructor's Goexit cut
	// short: see openExited.
	exitedOpen error
	// The rebuild under way, for a cleanup's Goexit.
	rebuildWhy   rebuildReason
	rebuildCause error
	// goexitBackoff is the last pause before an open after a Goexit, for
	// the next. Zero once an open succeeds.
	goexitBackoff time.Duration
}

// x returns the worker's workerRare, made on first use.
func (w *worker[R]) x() *workerRare[R] {
	if w.rare == nil {
		w.rare = new(workerRare[R])
	}
	return w.rare
}

// launch starts a worker in slot w: the start and the grower call it.
func (p *Pool[R]) launch(w *worker[R], boot func(*worker[R]) bool) {
	w.launches++
	w.err, w.final = nil, false
	w.phase.Store(phaseOpening)
	p.spawn(w, boot)
}

// spawn starts the goroutine of worker w. It is the only go statement for
// workers: called by launch, and by a worker whose task called
// runtime.Goexit, for its successor.
func (p *Pool[R]) spawn(w *worker[R], boot func(*worker[R]) bool) {
	go w.loop(boot)
}

// loop is a worker's life: boot (open, or go on after a Goexit), serve if
// boot says so — on a fresh goroutine, see below — and close whatever is
// open. A nil boot serves at once. A boot is given its worker, so that
// the common ones are method expressions, which cost no allocation.
func (w *worker[R]) loop(boot func(*worker[R]) bool) {
	if w.p.cfg.lockThread {
		lockThread()
	}
	normal := false
	defer func() {
		if !normal {
			w.goexited()
		}
	}()
	var (
		ctx     context.Context
		cancel  context.CancelFunc
		retired bool
	)
	at := stackAt()
	serve := boot == nil || boot(w)
	if serve && boot != nil && !w.p.cfg.lockThread && stackAt() != at {
		// The open grew this goroutine's stack (reflection, the user's
		// constructors): serve on a fresh one, which an idle worker keeps
		// small. Locked workers keep their thread instead. An open that
		// did not grow it, as most direct opens of a light resource, is
		// spared a goroutine.
		normal = true
		w.p.spawn(w, nil)
		return
	}
	if serve {
		var grown bool
		if ctx, cancel, retired, grown = w.serve(); grown {
			// A rebuild grew the stack: as after a first open, the
			// worker goes on serving on a fresh goroutine.
			normal = true
			w.p.spawn(w, nil)
			return
		}
	} else {
		ctx, cancel = w.p.closeContext()
	}
	if w.scope != nil {
		w.final = true
		w.err = w.close(ctx)
		if retired {
			// Its WorkerClosed event reported the error: a stop reports
			// only the closes it made, however long after this one.
			w.err = nil
		}
	}
	cancel()
	normal = true
	w.exit()
}

// stackAt returns where the calling goroutine's stack is. Two calls from
// one function return the same unless the stack moved in between: a stack
// that grows is copied to a larger one.
//
//go:noinline
func stackAt() uintptr {
	var b byte
	return uintptr(unsafe.Pointer(&b))
}

// exit ends the worker: Stats no longer counts it, its waiters are told,
// and an elastic slot is freed for the grower.
func (w *worker[R]) exit() {
	w.idle()
	w.releaseBound()
	if c := w.ctxs; c != nil {
		w.mu.Lock()
		c.cancel, c.shared = nil, nil
		w.mu.Unlock()
	}
	w.phase.Store(phaseVacant)
	mu := w.p.launchLock()
	mu.Lock()
	w.slotted = false
	waited := w.waited
	w.waited = nil
	mu.Unlock()
	if waited != nil {
		waited.exited()
	}
	if e := w.p.elastic; e != nil {
		e.wake() // a task that came while this worker retired needs a new one
	}
}

// renew rebuilds the worker's resources, before it runs a task, if they are
// too old, fail their check after idling, or are on a thread the worker
// left.
func (w *worker[R]) renew() {
	p := w.p
	if w.expired.Load() && w.scope != nil {
		w.rebuild(recycleAge, nil)
	}
	if p.cfg.checkIdle > 0 && !p.dropping.Load() {
		w.checkIfIdle()
	}
	if p.cfg.lockThread && w.scope != nil && threadID() != w.thread {
		// A task unlocked the thread and the worker moved: lock the new
		// one, and open the resources there.
		lockThread()
		w.rebuild(restart, errThreadChanged)
	}
}

// goexited runs when runtime.Goexit ends a worker's goroutine: the task
// that called it fails with ErrGoexit and a successor goroutine takes over
// the worker, as after a panic.
func (w *worker[R]) goexited() {
	p := w.p
	x := w.x()
	if t := x.cur; !t.control() {
		x.cur = task[R]{}
		p.spawn(w, func(*worker[R]) bool {
			w.after(&t, ErrGoexit, true)
			return true
		})
		return
	}
	if w.scope != nil && w.phase.Load() == phaseClosing && w.closing.Load() == w.scope {
		// In a cleanup: the scope ran the cleanups behind it before the
		// goroutine ended, and its errors name this one's Goexit, as a
		// panic's. The close ends as it would have, and so does what it
		// was part of: the worker's last close, or a rebuild.
		err := w.closed(w.closing.Load().Stuck(nil))
		if w.final {
			w.err = err
			p.spawn(w, func(*worker[R]) bool { return false })
			return
		}
		why, cause := x.rebuildWhy, x.rebuildCause
		held := w.takeHeld()
		p.spawn(w, func(*worker[R]) bool {
			x.hold(held) // a Goexit again hands it on
			w.reopen(why, cause)
			x.release()
			w.serving()
			if held != nil { // runs, or is dropped and told if the pool stops or the open failed
				w.handle(held)
			}
			return true
		})
		return
	}
	// A Goexit outside a task — in a constructor, a cleanup, a health check
	// or a callback — loses what it was doing: a constructor's partly
	// opened resources, a cleanup's remaining ones. The Goexit is an error
	// of what it interrupted, and the worker goes on as after a failed
	// open, backed off.
	err := fmt.Errorf("a cleanup, check or callback of worker %d called runtime.Goexit; resources it left open are abandoned: %w", w.id, ErrGoexit)
	if open := x.exitedOpen; open != nil {
		// In a constructor: the open closed what it had opened, and the
		// error names the resource, as a failed open's does.
		x.exitedOpen, err = nil, open
		w.opening.Store(nil)
		w.opened(p.cfg.clock.Now(), err)
	} else {
		p.log.Error("runtime.Goexit outside a task", zap.Int("worker", w.id), zap.Int("generation", w.gen), zap.Error(err))
	}
	switch {
	case w.final: // closing for good: what is left of the scope is lost
		w.scope = nil
		w.err = errors.Join(w.err, err)
		p.spawn(w, func(*worker[R]) bool { return false })
	case w.run != nil: // opening for the start
		run := w.run
		w.run = nil
		run.failed.Store(true)
		run.end() // the next worker may open: it sees the failure
		p.spawn(w, func(*worker[R]) bool { return run.report(w.id, err) })
	default: // opening or checking for a rebuild, or in a callback
		why := restart
		if w.phase.Load() == phaseChecking && w.scope != nil {
			// A health check: the resources are intact, and closed below.
			why, err = failedCheck, fmt.Errorf("the health check of worker %d called runtime.Goexit", w.id)
		}
		w.phase.Store(phaseRebuilding)
		x.rebuildWhy, x.rebuildCause = why, err
		held := w.takeHeld()
		// Backed off as reopen backs off, across the goroutines that
		// Goexits end: min, then twice as long each time, up to max.
		x.goexitBackoff = min(max(2*x.goexitBackoff, p.cfg.backoffMin), p.cfg.backoffMax)
		pause := x.goexitBackoff/2 + rand.N(x.goexitBackoff/2+1)
		p.spawn(w, func(*worker[R]) bool {
			x.hold(held)        // a Goexit again hands it on
			if w.scope != nil { // intact after a callback; a no-op if a cleanup was running
				ctx, cancel := p.closeContext()
				_ = w.close(ctx)
				cancel()
			}
			if p.countRestart(err) && p.sleep(pause, held != nil) {
				w.reopen(why, err)
			}
			x.release()
			w.serving()
			if held != nil { // runs, or is dropped and told if the pool stops or the open failed
				w.handle(held)
			}
			return true
		})
	}
}

// takeHeld takes the task the worker held while it rebuilt (see handle),
// if any, for the successor of the goroutine a Goexit ended.
func (w *worker[R]) takeHeld() *task[R] {
	if w.rare == nil || !w.rare.holds {
		return nil
	}
	t := w.rare.holding
	w.rare.release()
	return &t
}

// hold keeps a copy of t, if not nil, for goexited. A copy, not t: the task
// of a worker's loop stays on its stack.
func (x *workerRare[R]) hold(t *task[R]) {
	if t != nil {
		x.holding, x.holds = *t, true
	}
}

// release forgets the task hold kept.
func (x *workerRare[R]) release() { x.holding, x.holds = task[R]{}, false }

// serve runs tasks until the worker is told to end — by a pill, by retiring
// from an elastic pool or after a Resize, or because the stop gave up
// waiting — and returns the context to close its resources with, and
// whether the worker retired, before any stop. It returns grown, and
// nothing else, if a rebuild grew the goroutine's stack: the worker goes
// on serving on a fresh one (see loop).
func (w *worker[R]) serve() (ctx context.Context, cancel context.CancelFunc, retired, grown bool) {
	w.serving()
	w.grown = false // a boot's rebuild: loop looked at the stack since
	var t task[R]   // the task at hand, passed by pointer: it is five words
	for w.next(&t) {
		if t.control() { // a pill: next takes the wake-ups
			w.idle()
			return t.ctx, noCancel, false, false
		}
		w.handle(&t)
		if w.grown {
			w.grown = false
			return nil, nil, false, true
		}
	}
	select {
	case <-w.p.abandon: // the stop gave up: it may still wait, and report
	default:
		retired = true
	}
	ctx, cancel = w.p.closeContext()
	return ctx, cancel, retired, false
}

// noCancel is the cancel of a context that needs none. A package-level
// func: a literal in a generic method would be made for each call.
var noCancel = func() {}

// next waits for a task and puts it in t. It reports false if the worker
// is to end without a pill: an elastic worker that retires, a worker a
// Resize removed, or any once the stop gave up.
func (w *worker[R]) next(t *task[R]) bool {
	p := w.p
	for {
		switch {
		case p.elastic != nil:
			if !w.nextElastic(t) {
				return false
			}
		case w.ending():
			return false
		default:
			if !p.q.TryPop(t) && !w.wait(t) {
				return false
			}
		}
		if !t.isWakeUp() {
			return true
		}
	}
}

// ending reports whether a worker of a fixed pool is to end rather than
// take a task: the stop gave up waiting for it, or a Resize removed it (it
// takes its share of the excess).
func (w *worker[R]) ending() bool {
	select {
	case <-w.p.abandon:
		return true
	default:
	}
	return w.p.retireExcess()
}

// wait blocks in the queue until a task or a wake-up comes, unless the
// worker is to end. It waits on the queue alone, the cheapest wait there
// is: waiting on the pool's other channels too would make every wait and
// wake a select, which takes each channel's lock. Instead, whoever gives a
// waiting worker a reason to end — the stop giving up (abandon), Resize
// (the excess) — says so first and then calls wakeWaiting, while the
// worker counts itself waiting first and then looks: one of the two sees
// the other.
func (w *worker[R]) wait(t *task[R]) bool {
	p := w.p
	*t = task[R]{} // an idle worker keeps no task alive
	w.idle()
	w.forgetEnded()
	w.waits.Add(1) // odd: waiting
	defer w.waits.Add(1)
	if w.ending() {
		return false
	}
	// A worker that has run no task yet waits without yielding first: at a
	// start, thousands of workers wait for their first task at once, and a
	// yield puts each through the global run queue, twice, for nothing
	// (a sixth of the CPU time of starting and stopping 10,000 workers).
	// Once it has run tasks, a yield or two is cheaper than a wake-up.
	p.q.Take(t, w.ran != 0)
	return true
}

// isWakeUp reports whether t is a wake-up sent by wakeWaiting: no task and,
// unlike a pill, no context.
func (t task[R]) isWakeUp() bool { return t.control() && t.ctx == nil }

// wakeWaiting wakes every worker of a fixed pool that waits in the queue,
// or is about to, so that it looks again at why it might end; those with
// no reason wait again. Each is sent a wake-up while the queue is empty
// (a worker blocks only then), until it has left the wait it was in; a
// wake-up taken by another worker is dropped by that one, and one sent
// after the stop's last sweep of the queue is swept by its sender, as a
// late task is (see queued). It returns once every worker that was waiting
// has moved on.
func (p *Pool[R]) wakeWaiting() {
	for _, w := range p.all() {
		n := w.waits.Load()
		for n%2 == 1 && w.waits.Load() == n {
			if p.q.Len() == 0 && p.q.TryPush(task[R]{}) && p.swept.Load() {
				p.sweep()
			}
			runtime.Gosched()
		}
	}
}

// handle runs one task, or drops it, and rebuilds the resources if needed.
func (w *worker[R]) handle(t *task[R]) {
	p := w.p
	if w.expired.Load() || p.cfg.checkIdle > 0 || p.cfg.lockThread {
		// The resources may be rebuilt before t runs: a Goexit in a
		// constructor, a cleanup or a check then hands t to the worker's
		// successor (see goexited).
		x := w.x()
		x.hold(t)
		w.renew()
		x.release()
	}
	if p.dropping.Load() || w.scope == nil {
		p.drop(*t)
		return
	}
	if err := givenUp(t); err != nil {
		p.dropped.Add(1)        // before its submitter hears
		p.tell(*t, NotRun, err) // its submitter gave up on it
		return
	}
	if b, ok := t.res.(beginner); ok && !b.begin() {
		// Its group's Wait gave up on it, once the group's context ended.
		p.dropped.Add(1) // before its submitter hears
		p.tell(*t, NotRun, context.Cause(t.ctx))
		return
	}
	ctx := p.tasks
	switch t.mode {
	case ctxValues:
		ctx = &valuesCtx{Context: p.tasks, values: t.ctx}
	case ctxBound:
		ctx = w.boundCtx(t.ctx)
	case ctxShared:
		ctx = t.ctx
		if c := w.kept(); ctx != c.shared {
			c.shared = ctx
			w.track(t.res.(sharedCtx).cancelCause())
		}
	}
	if !w.busy {
		w.publish(true)
	}
	err, panicked := w.exec(ctx, t)
	if x := w.rare; x != nil && !x.cur.control() { // a recovered panic(nil) under GODEBUG=panicnil=1
		x.cur = task[R]{}
	}
	if nr, ok := err.(notRun); ok && !panicked {
		p.dropped.Add(1) // before its submitter hears
		p.tell(*t, NotRun, nr.cause)
		return
	}
	w.after(t, err, panicked)
}

// notRun is returned by a job that found, once it began, that it must
// not run — its context had ended — for the worker to report it as a
// task that never ran.
type notRun struct{ cause error }

func (e notRun) Error() string { return "not run: " + e.cause.Error() }

// track publishes the cancel func of a Map's tasks' context, which the
// worker's task is about to run in, so that the pool's stop can cancel
// it: the context derives from the Map's caller's, not from the pool's.
// It stays tracked until the worker runs another Map's task: cancelling a
// context whose Map is over changes nothing.
func (w *worker[R]) track(cancel context.CancelCauseFunc) {
	c := w.kept()
	w.mu.Lock()
	c.cancel = cancel
	w.mu.Unlock()
	if w.p.tasks.Err() != nil {
		cancel(context.Cause(w.p.tasks)) // the stop came first
	}
}

// boundCtx returns the context of a task bound to its submitter's context
// parent: derived from parent, and cancelled by the pool's stop. The
// worker keeps the last one for the next task with the same parent — a
// feeder's, a group's or a caller's many tasks share theirs — rather than
// derive one for each task and register it with parent; one that has
// ended (parent did, or the stop) is replaced, and released when the
// worker exits.
func (w *worker[R]) boundCtx(parent context.Context) context.Context {
	c := w.kept()
	if c.bound != nil && same(parent, c.boundParent) && !ended(c.bound) {
		return c.bound
	}
	ctx, cancel := context.WithCancelCause(parent)
	w.mu.Lock()
	prev := c.boundCancel
	c.boundCancel = cancel
	w.mu.Unlock()
	if prev != nil {
		prev(nil)
	}
	c.bound, c.boundParent = ctx, parent
	if w.p.tasks.Err() != nil {
		cancel(context.Cause(w.p.tasks)) // the stop came first
	}
	return ctx
}

// forgetEnded lets go of the contexts kept for the next task, bound or
// Map's, that have ended: a worker about to idle keeps no request's
// context, and its values, alive.
func (w *worker[R]) forgetEnded() {
	c := w.ctxs
	if c == nil {
		return
	}
	if c.bound != nil && ended(c.bound) {
		w.releaseBound()
	}
	if c.shared != nil && ended(c.shared) {
		w.mu.Lock()
		c.cancel, c.shared = nil, nil
		w.mu.Unlock()
	}
}

// same reports whether a and b are one context. A context whose type
// cannot be compared (a struct with a slice, passed by value) is never the
// same as another: == on it would panic.
func same(a, b context.Context) bool {
	return reflect.TypeOf(a).Comparable() && a == b
}

// ended reports whether ctx is done: a receive that does not block, cheaper
// than Err, which takes the context's lock.
func ended(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// releaseBound ends the context boundCtx kept, when the worker exits.
func (w *worker[R]) releaseBound() {
	c := w.ctxs
	if c == nil {
		return
	}
	w.mu.Lock()
	cancel := c.boundCancel
	c.boundCancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
	c.bound, c.boundParent = nil, nil
}

// cancelRunning cancels the context of every running task, with cause.
func (p *Pool[R]) cancelRunning(cause error) {
	p.cancelTasks(cause)
	cause = context.Cause(p.tasks)
	for _, w := range p.all() {
		w.mu.Lock()
		if c := w.ctxs; c != nil {
			if c.cancel != nil {
				c.cancel(cause)
			}
			if c.boundCancel != nil {
				c.boundCancel(cause)
			}
		}
		w.mu.Unlock()
	}
}

// valuesCtx is the context of a task of Go: its submitter's values, the
// pool's cancellation.
type valuesCtx struct {
	context.Context // the pool's tasks context
	values          context.Context
}

func (c *valuesCtx) Value(key any) any {
	// The pool's context first: it answers context's own keys, so that
	// context.Cause tells the pool's cause; it holds no other values.
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// exec runs one task, turning a panic into a *PanicError. A Goexit goes
// through: exec records the task in w.cur, and the worker's loop hands the
// worker to a successor, which reports it (see goexited). Recording it only
// then keeps a copy of the task off the path of every task.
func (w *worker[R]) exec(ctx context.Context, t *task[R]) (err error, panicked bool) {
	returned := false
	defer func() {
		if !returned {
			if perr := safe.Recovered(recover()); perr != nil {
				err, panicked = perr, true
			} else {
				w.x().cur = *t // nothing to recover: a Goexit
			}
		}
	}()
	err = t.call(ctx, w.r)
	returned = true
	return err, false
}

// after accounts for a task that ran, tells its submitter, and rebuilds
// the worker's resources if the task broke them or they are due.
func (w *worker[R]) after(t *task[R], err error, faulted bool) {
	p := w.p
	w.ran++
	if t.res != nil || err != nil || w.ran%publishEvery == 0 {
		// A submitter who hears of its task finds it in Stats, and so
		// does the ErrorHandler of a task of Go that failed.
		w.publish(t.res == nil)
	}
	if p.cfg.checkIdle > 0 && w.idling != nil {
		w.idling.lastDone = p.cfg.clock.Now() // before the submitter hears
	}
	outcome := Succeeded
	if err != nil {
		outcome = Failed
		w.failed.Add(1)
		if faulted {
			outcome = Panicked
			w.panics.Add(1)
		}
	}
	if t.res != nil {
		p.tell(*t, outcome, err)
	} else if err != nil {
		p.handle(err)
	}
	w.tasks++
	switch {
	case faulted || err != nil && errors.Is(err, resources.ErrBroken):
		w.rebuild(restart, err)
	case w.tasks == p.cfg.maxTasks:
		w.rebuild(recycleTasks, nil)
	}
}

func (w *worker[R]) identity() resources.Worker {
	return resources.Worker{Pool: w.p.name, ID: w.id, Generation: w.gen}
}

// publishEvery is how many tasks of Go a worker runs in a row, the queue
// never empty, between two publications of its count.
const publishEvery = 64

// publish makes the worker's count of tasks run, and whether it is busy,
// visible to Stats: one store, made only when the worker turns busy (it
// takes a task) or idle (it is about to wait, or has told a submitter of
// its task), and every publishEvery tasks in between. A store per task,
// two for busy and done, was a fifth of the cost of a task of Go.
func (w *worker[R]) publish(busy bool) {
	w.busy = busy
	v := w.ran << 1
	if busy {
		v |= 1
	}
	w.stat.Store(v)
}

// idle publishes the worker idle, if it was not.
func (w *worker[R]) idle() {
	if w.busy {
		w.publish(false)
	}
}

// running reports whether the worker is running tasks, as published: from
// taking a task to telling its submitter, or, for tasks of Go taken one
// after another, to waiting for the next.
func (w *worker[R]) running() bool { return w.stat.Load()&1 == 1 }

// doing says what the worker is doing, for reports of a stuck worker.
func (w *worker[R]) doing() string {
	switch w.phase.Load() {
	case phaseOpening, phaseRebuilding:
		if name := w.opening.Load(); name != nil {
			return "opening " + *name
		}
		return "opening its resources"
	case phaseServing:
		if w.running() {
			return "in a task that ignores its context"
		}
		return "idle, never reached by the stop"
	case phaseChecking:
		return "in a health check of its resources"
	case phaseClosing:
		return "closing its resources"
	case phaseResourceless:
		return "dropping tasks, its resources failed to reopen"
	}
	return "exiting"
}

// serving marks that the worker serves, after its open or a rebuild: with
// its resources or, if its reopen gave up, with none, dropping what it
// takes (Stats counts it among neither Workers nor Opening).
func (w *worker[R]) serving() {
	if w.scope == nil {
		w.phase.Store(phaseResourceless)
		return
	}
	w.phase.Store(phaseServing)
}

// open opens a fresh generation of the worker's resources.
func (w *worker[R]) open(ctx context.Context) error {
	p := w.p
	w.gen = w.opens
	var began time.Time
	if p.hears(zap.WarnLevel) { // its event (debug or warn) may be heard: it says how long the open took
		began = time.Now() // how long it took, not the pool's clock (WithClock): as ResourceOpened
	}
	id := w.identity()
	scope, err := p.plan.OpenWith(ctx, &id, p.ext, &p.opts)
	w.opening.Store(nil)
	w.opened(began, err)
	if err != nil {
		return err
	}
	w.adopt(scope)
	return nil
}

// openExited records, for goexited, the error of an open whose constructor
// called runtime.Goexit, once the open has closed what it opened before.
func (w *worker[R]) openExited(resource, constructor string, rollback error) {
	w.x().exitedOpen = errors.Join(&resources.OpenError{Resource: resource, Constructor: constructor, Err: errConstructorGoexit}, rollback)
}

// errConstructorGoexit is the error of a constructor that called
// runtime.Goexit.
var errConstructorGoexit = fmt.Errorf("%w (a constructor must return: t.FailNow and testify's require call runtime.Goexit)", ErrGoexit)

// opened records an open that began at began.
func (w *worker[R]) opened(began time.Time, err error) {
	if e, p := (WorkerOpened{Err: err}), w.p; p.hears(e.Level()) {
		e.Worker, e.Took = w.identity(), time.Since(began)
		p.record(e)
	}
}

// adopt makes scope the worker's resources, and the worker ready to serve.
func (w *worker[R]) adopt(scope *plan.Scope[R]) {
	p := w.p
	w.opens++
	if w.rare != nil {
		w.rare.goexitBackoff = 0
	}
	if p.cfg.lockThread {
		w.thread = threadID() // a system call: only locked workers need it
	}
	w.phase.Store(phaseServing) // before anyone hears: Stats counts it
	w.scope, w.r, w.tasks = scope, scope.Value(), 0
	if (p.cfg.checkIdle > 0 || p.cfg.maxAge > 0) && w.idling == nil {
		w.idling = new(idling)
	}
	if p.cfg.checkIdle > 0 {
		w.idling.lastDone = p.cfg.clock.Now()
	}
	if p.cfg.maxAge > 0 {
		w.expired.Store(false)
		w.idling.aging = p.cfg.clock.AfterFunc(p.cfg.maxAge, func() { w.expired.Store(true) })
	}
}

// close closes the worker's resources, in reverse order, on the worker's
// goroutine, and returns their errors; a stop that runs out of time
// reports a hang through w.closing.
func (w *worker[R]) close(ctx context.Context) error {
	p := w.p
	w.closing.Store(w.scope)
	w.closePrev = w.phase.Swap(phaseClosing)
	if p.hears(zap.WarnLevel) { // as for an open: time.Now is not free
		w.closeBegan = time.Now()
	}
	if w.idling != nil && w.idling.aging != nil {
		w.idling.aging.Stop()
		w.idling.aging = nil
	}
	w.expired.Store(false)
	return w.closed(w.scope.Unwind(ctx))
}

// closed ends a close whose cleanups have all run, with their errors err:
// by close, or by goexited after a cleanup's Goexit (the scope ran the
// cleanups behind it before the goroutine ended).
func (w *worker[R]) closed(err error) error {
	p := w.p
	w.scope = nil
	var zero R
	w.r = zero
	if e := (WorkerClosed{Err: err}); p.hears(e.Level()) {
		e.Worker, e.Took = w.identity(), time.Since(w.closeBegan)
		p.record(e)
	}
	w.phase.Store(w.closePrev)
	return err
}

// closeContext is the context of a close that no caller bounds: a rebuild,
// a recycle, an elastic retirement, a worker the start or stop gave up on.
func (p *Pool[R]) closeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), p.cfg.closeTimeout)
}

// checkIfIdle runs the resources' health checks if the worker's last task
// (or its open) ended more than CheckIdle ago, and rebuilds them if one
// fails.
func (w *worker[R]) checkIfIdle() {
	p := w.p
	if w.scope == nil || p.cfg.clock.Now().Sub(w.idling.lastDone) <= p.cfg.checkIdle {
		return
	}
	w.phase.Store(phaseChecking)
	err := w.scope.Check(p.tasks)
	w.phase.Store(phaseServing)
	if err != nil {
		w.rebuild(failedCheck, err)
	}
}

// Why a worker rebuilds its resources.
type rebuildReason int

const (
	restart      rebuildReason = iota // a panic, a Goexit or ErrBroken
	recycleTasks                      // MaxTasksPerWorker
	recycleAge                        // MaxWorkerAge
	failedCheck                       // a health check after idling
)

func (r rebuildReason) String() string {
	return [...]string{"restart", "max tasks per worker", "max worker age", "failed check"}[r]
}

// rebuild closes the worker's resources and opens fresh ones.
func (w *worker[R]) rebuild(why rebuildReason, cause error) {
	p := w.p
	at := stackAt()
	w.phase.Store(phaseRebuilding)
	x := w.x()
	x.rebuildWhy, x.rebuildCause = why, cause
	if w.scope != nil {
		// Not cancelled with the tasks: a batch must still commit.
		ctx, cancel := p.closeContext()
		_ = w.close(ctx) // reported as a WorkerClosed event
		cancel()
	}
	w.reopen(why, cause)
	w.serving()
	// Did the close or the open grow the stack? (A Goexit in either ends
	// this goroutine: its successor starts on a fresh one.)
	w.grown = w.grown || !p.cfg.lockThread && stackAt() != at
}

// reopen opens a fresh generation of the worker's resources, backing off
// while the open fails, until it succeeds or the pool stops taking tasks:
// the first attempt is made even during a stop that drains the queue, the
// retries are not. Restarts count toward MaxRestarts; recycling does not.
func (w *worker[R]) reopen(why rebuildReason, cause error) {
	p := w.p
	backoff := p.cfg.backoffMin
	for {
		if (why == restart || why == failedCheck) && !p.countRestart(cause) {
			return // the pool failed or stops: the worker drops what it takes
		}
		err := w.open(p.tasks)
		if err == nil {
			if why == restart || why == failedCheck {
				p.restarts.Add(1)
			} else {
				p.recycles.Add(1)
			}
			p.record(WorkerRebuilt{Worker: w.identity(), Reason: why.String(), Cause: cause})
			return
		}
		why, cause = restart, err // a failed open is a fault, whatever started it
		if !p.sleep(backoff/2+rand.N(backoff/2+1), w.rare != nil && w.rare.holds) {
			return
		}
		backoff = min(2*backoff, p.cfg.backoffMax)
	}
}

// sleep waits for d on the pool's clock before a worker tries again to
// open, and reports whether it should: not once the pool drops its tasks
// (see beginDropping), nor once it takes no more, unless a stop drains
// until a deadline and tasks are left — queued, or held, the task the
// worker took before it found it had to rebuild. A stop under Drain thus
// waits for a worker that reopens while tasks are left for it, until two
// fifths of its budget; an idle pool's stop does not, nor one without a
// deadline, which would otherwise wait for ever for a resource that is
// gone.
func (p *Pool[R]) sleep(d time.Duration, holding bool) bool {
	woke := make(chan struct{})
	t := p.cfg.clock.AfterFunc(d, func() { close(woke) })
	defer t.Stop()
	closing := p.closing
	var poll <-chan time.Time
	for {
		select {
		case <-woke:
			return p.worthReopening(holding)
		case <-p.drops:
			return false
		case <-closing: // the pool stopped taking tasks
			if !p.worthReopening(holding) {
				return false
			}
			// Tasks are left to drain: look again, now and then, as
			// workers take them.
			tick := time.NewTicker(drainPoll)
			defer tick.Stop()
			poll, closing = tick.C, nil // a nil channel: this case is done
		case <-poll:
			if !p.worthReopening(holding) {
				return false
			}
		}
	}
}

// drainPoll is how often a worker that waits to reopen during a stop
// looks whether any task is left for it.
const drainPoll = 5 * time.Millisecond

// worthReopening reports whether a worker should try again to open: the
// pool takes tasks, or a stop drains until a deadline and some tasks are
// still held by the worker, queued or being queued.
func (p *Pool[R]) worthReopening(holding bool) bool {
	switch {
	case p.dropping.Load():
		return false
	case p.accepting.Load():
		return true
	}
	return p.drainsUntil.Load() && (holding || p.submitting.Load() > 0 || p.q.Len() > 0)
}

// lockThread locks the calling worker's goroutine to its thread, twice: a
// task's one unbalanced runtime.UnlockOSThread leaves it locked. The worker
// never unlocks: the thread ends with it.
func lockThread() {
	runtime.LockOSThread()
	runtime.LockOSThread()
}

// errThreadChanged is the cause of a rebuild of a worker locked to its
// thread whose task unlocked it.
var errThreadChanged = errors.New("workerpool: a task unlocked the worker's OS thread")

// workerError names the worker on every line of its error.
type workerError struct {
	id  int
	err error
}

func (e *workerError) Error() string {
	prefix := fmt.Sprintf("worker %d: ", e.id)
	return prefix + strings.ReplaceAll(e.err.Error(), "\n", "\n"+prefix)
}

func (e *workerError) Unwrap() error { return e.err }
