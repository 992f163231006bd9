package workerpool

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/resources"
)

// Worker phases.
const (
	phaseOpening int32 = iota
	phaseServing
	phaseRebuilding
	phaseClosing
	phaseExited
	phaseVacant // an elastic pool's slot with no worker
)

// worker is one goroutine and its resources. Fields without atomics belong
// to the worker's goroutine.
type worker[R any] struct {
	p     *Pool[R]
	id    int
	gen   int
	scope *resources.Scope[R]
	r     R
	tasks int // tasks run since the resources opened
	// lastDone is when the last task ended or the resources opened, kept
	// for CheckIdle only.
	lastDone time.Time
	aging    Timer // flags expired once the resources reach MaxWorkerAge

	phase   atomic.Int32
	closing atomic.Pointer[resources.Scope[R]] // the scope being closed, for reports
	started atomic.Uint64                      // tasks begun; busy while above done
	done    atomic.Uint64
	failed  atomic.Uint64
	panics  atomic.Uint64
	expired atomic.Bool // the resources are older than MaxWorkerAge

	err    error // teardown error, written before exited is closed
	exited chan struct{}
}

// busy reports whether the worker is running a task.
func (w *worker[R]) busy() bool { return w.started.Load() != w.done.Load() }

func (w *worker[R]) identity() resources.Worker {
	return resources.Worker{Pool: w.p.name, ID: w.id, Generation: w.gen}
}

func (w *worker[R]) doing() string {
	switch w.phase.Load() {
	case phaseOpening:
		return "opening its resources"
	case phaseServing:
		if w.busy() {
			return "in a task that ignores its context"
		}
		return "serving"
	case phaseRebuilding:
		return "rebuilding its resources"
	case phaseClosing:
		return "closing its resources"
	}
	return "exiting"
}

// opener opens workers, one after another, until none is left. Each
// opened worker waits for the start's verdict on a goroutine of its own:
// the open's reflection grew the opener's stack, and an idle worker should
// not keep such a stack.
func (p *Pool[R]) opener(ctx context.Context, n int, next *atomic.Int64, ready chan<- openResult, open <-chan struct{}) {
	for {
		i := int(next.Add(1) - 1)
		if i >= n {
			return
		}
		w := p.workers[i]
		err := context.Cause(ctx)
		if err == nil {
			err = w.open(ctx)
		}
		ready <- openResult{id: w.id, err: err}
		go w.run(ctx, open)
	}
}

// run waits for the start's verdict, then serves until the pool stops and
// closes the worker's resources, or closes them at once if the start failed.
func (w *worker[R]) run(ctx context.Context, open <-chan struct{}) {
	p := w.p
	<-open
	if !p.serving.Load() {
		if w.scope != nil {
			// The start waits for this with its own rollback budget.
			w.close(context.WithoutCancel(ctx))
		}
		w.exit()
		return
	}
	w.phase.Store(phaseServing)
	if p.elastic != nil {
		w.serveElastic()
		return
	}
	w.serve()
	if w.scope != nil {
		w.close(p.stopCtx)
	}
	w.exit()
}

func (w *worker[R]) exit() {
	w.phase.Store(phaseExited)
	close(w.exited)
}

// open opens a fresh generation of the worker's resources.
func (w *worker[R]) open(ctx context.Context) error {
	p := w.p
	began := p.cfg.clock.Now()
	scope, err := p.plan.Open(ctx, w.identity(), p.ext)
	p.record(WorkerOpened{Worker: w.identity(), Took: p.cfg.clock.Now().Sub(began), Err: err})
	if err != nil {
		return err
	}
	w.scope, w.r, w.tasks = scope, scope.Value(), 0
	if p.cfg.checkIdle > 0 {
		w.lastDone = p.cfg.clock.Now()
	}
	if p.cfg.maxAge > 0 {
		w.expired.Store(false)
		w.aging = p.cfg.clock.AfterFunc(p.cfg.maxAge, func() { w.expired.Store(true) })
	}
	return nil
}

// close closes the worker's resources on its own goroutine; a stop that
// runs out of time reports a hang through w.closing.
func (w *worker[R]) close(ctx context.Context) {
	w.closing.Store(w.scope)
	prev := w.phase.Swap(phaseClosing)
	began := w.p.cfg.clock.Now()
	if w.aging != nil {
		w.aging.Stop()
		w.aging = nil
	}
	w.expired.Store(false)
	err := w.scope.Unwind(ctx)
	w.scope = nil
	w.p.record(WorkerClosed{Worker: w.identity(), Took: w.p.cfg.clock.Now().Sub(began), Err: err})
	if err != nil {
		w.err = errors.Join(w.err, err)
	}
	w.phase.Store(prev)
}

// serve runs tasks until it takes the stop's pill: the stop queues one
// pill per worker behind the tasks already queued, so every one of those
// runs first (or is dropped, if the stop cancels them).
func (w *worker[R]) serve() {
	p := w.p
	for {
		t := <-p.q
		if t.fn == nil {
			return
		}
		w.handle(t)
	}
}

// handle runs one task, or drops it, and rebuilds the resources if needed.
func (w *worker[R]) handle(t task[R]) {
	p := w.p
	if w.expired.Load() && w.scope != nil {
		w.rebuild(recycleAge, nil)
	}
	if p.cfg.checkIdle > 0 && !p.dropping.Load() {
		w.checkIfIdle()
	}
	if p.dropping.Load() || w.scope == nil {
		p.drop(t)
		return
	}
	w.started.Add(1)
	panicked, err := w.exec(t.fn)
	w.done.Add(1)
	if p.cfg.checkIdle > 0 {
		w.lastDone = p.cfg.clock.Now() // before the submitter hears
	}
	if err != nil {
		w.failed.Add(1)
		if panicked {
			w.panics.Add(1)
		}
	}
	if t.res != nil {
		t.res.finish(err)
	} else if err != nil {
		p.cfg.onError(err)
	}
	w.tasks++
	switch {
	case panicked || err != nil && errors.Is(err, resources.ErrBroken):
		w.rebuild(restart, err)
	case w.tasks == p.cfg.maxTasks:
		w.rebuild(recycleTasks, nil)
	}
}

// exec runs one task, turning a panic into a *PanicError.
func (w *worker[R]) exec(fn func(context.Context, R) error) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = true, newPanicError(r)
		}
	}()
	return false, fn(w.p.runCtx, w.r)
}

func newPanicError(r any) *PanicError {
	return &PanicError{Value: r, Stack: debug.Stack()}
}

// checkIfIdle runs the resources' health checks if the worker's last task
// (or its open) ended more than CheckIdle ago, and rebuilds them if one
// fails.
func (w *worker[R]) checkIfIdle() {
	p := w.p
	if w.scope == nil || p.cfg.clock.Now().Sub(w.lastDone) <= p.cfg.checkIdle {
		return
	}
	if err := w.scope.Check(p.runCtx); err != nil {
		w.rebuild(failedCheck, err)
	}
}

// Why a worker rebuilds its resources.
type rebuildReason int

const (
	restart      rebuildReason = iota // a panic or ErrBroken
	recycleTasks                      // MaxTasksPerWorker
	recycleAge                        // MaxWorkerAge
	failedCheck                       // a health check after idling
)

func (r rebuildReason) String() string {
	return [...]string{"restart", "max tasks per worker", "max worker age", "failed check"}[r]
}

// rebuild closes the worker's resources and opens fresh ones, backing off
// while the open fails, until it succeeds or the pool stops. Restarts count
// toward MaxRestarts; recycling does not.
func (w *worker[R]) rebuild(why rebuildReason, cause error) {
	p := w.p
	w.phase.Store(phaseRebuilding)
	defer w.phase.CompareAndSwap(phaseRebuilding, phaseServing)
	// The close is not cancelled with the tasks: a batch must still commit.
	w.close(context.WithoutCancel(p.runCtx))
	w.err = nil // recorded as a WorkerClosed event
	w.reopen(why, cause)
}

// reopen opens a fresh generation of the worker's resources, backing off
// while the open fails, until it succeeds or the pool stops.
func (w *worker[R]) reopen(why rebuildReason, cause error) {
	p := w.p
	backoff := p.cfg.backoffMin
	for {
		if (why == restart || why == failedCheck) && !p.countRestart() {
			return // the pool failed: the worker drops what it takes
		}
		w.gen++
		err := w.open(p.runCtx)
		if err == nil {
			if why == restart || why == failedCheck {
				p.restarts.Add(1)
			} else {
				p.recycles.Add(1)
			}
			p.record(WorkerRebuilt{Worker: w.identity(), Reason: why.String(), Cause: cause})
			return
		}
		why = restart // a failed open is a fault, whatever started it
		if !p.sleep(backoff/2 + rand.N(backoff/2+1)) {
			return // the pool is stopping
		}
		backoff = min(2*backoff, p.cfg.backoffMax)
	}
}

// sleep waits for d on the pool's clock, and reports false if the pool
// began to stop first.
func (p *Pool[R]) sleep(d time.Duration) bool {
	woke := make(chan struct{})
	t := p.cfg.clock.AfterFunc(d, func() { close(woke) })
	select {
	case <-woke:
		return true
	case <-p.runCtx.Done():
		t.Stop()
		return false
	}
}
