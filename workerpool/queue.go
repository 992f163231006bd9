package workerpool

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// task is one submitted task. res, if not nil, is told its outcome. A task
// with a nil fn is a pill: the worker that takes it closes its resources
// with ctx and exits. The stop queues one pill per worker behind the tasks
// already queued.
type task[R any] struct {
	fn  func(context.Context, R) error
	res outcome
	ctx context.Context // a pill's close context
}

// outcome receives what became of a task, exactly once: its error (nil if
// it succeeded), a *PanicError, ErrGoexit, or ErrClosed if it never ran.
type outcome interface{ finish(error) }

// Go submits a task and returns without waiting for it to run. It blocks
// only while the queue is full, until there is room, the pool stops
// ([ErrClosed]) or ctx is done (ctx's error). The task's own error goes to
// the pool's [ErrorHandler]. Before the pool starts, Go returns
// [ErrNotStarted].
func (p *Pool[R]) Go(ctx context.Context, task func(context.Context, R) error) error {
	if task == nil {
		return ErrNilTask
	}
	return p.enqueue(ctx, taskOf(task, nil))
}

func taskOf[R any](fn func(context.Context, R) error, res outcome) task[R] {
	return task[R]{fn: fn, res: res}
}

// TryGo submits a task only if a worker or the queue has room now. It never
// blocks. It returns false if the queue is full, the pool is not serving,
// or task is nil.
func (p *Pool[R]) TryGo(task func(context.Context, R) error) bool {
	if task == nil || !p.accepting.Load() {
		return false
	}
	t := taskOf(task, nil)
	for range 4 {
		select {
		case p.q <- t:
			p.queued()
			return true
		default:
		}
		// A worker counted as idle is about to wait in the queue: with
		// QueueSize(0), give it the moment it needs.
		if p.idle.Load() == 0 {
			return false
		}
		runtime.Gosched()
	}
	return false
}

// Do submits a task and waits for it. It returns the task's error, a
// [*PanicError] if it panicked, [ErrGoexit] if it called runtime.Goexit,
// [ErrClosed] if the pool stopped before it ran, or ctx's error if ctx
// ended first — in which case the task may still run later.
func (p *Pool[R]) Do(ctx context.Context, task func(context.Context, R) error) error {
	if task == nil {
		return ErrNilTask
	}
	w := waiters.Get().(*waiter)
	if err := p.enqueue(ctx, taskOf(task, w)); err != nil {
		waiters.Put(w)
		return err
	}
	if ctx.Done() == nil { // a context that never ends: no need for select
		err := <-w.ch
		waiters.Put(w)
		return err
	}
	select {
	case err := <-w.ch:
		waiters.Put(w)
		return err
	case <-ctx.Done():
		return ctx.Err() // w stays with the task and is not reused
	}
}

// waiter is the outcome of a Do. Waiters are reused, so Do allocates nothing.
type waiter struct{ ch chan error }

func (w *waiter) finish(err error) { w.ch <- err }

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan error, 1)} }}

// enqueue puts t in the queue, waiting for room until ctx is done or the
// pool closes.
//
// Submitting takes no lock: the queue is never closed, so a submitter that
// saw the pool open may still send after it began to stop. Such a late task
// either reaches a worker, is dropped by the stop's last sweep of the
// queue, or — if it arrived after that sweep — is dropped by its submitter
// in queued. It is never left behind unreported.
func (p *Pool[R]) enqueue(ctx context.Context, t task[R]) error {
	if !p.accepting.Load() {
		return p.refusal()
	}
	select {
	case p.q <- t:
	default:
		if err := p.enqueueSlow(ctx, t); err != nil {
			return err
		}
	}
	p.queued()
	return nil
}

// enqueueSlow waits for room in the queue. It first yields a few times, as
// a mutex spins: a worker is usually about to take a task, and parking in a
// select costs more than the wait.
func (p *Pool[R]) enqueueSlow(ctx context.Context, t task[R]) error {
	for range 4 {
		runtime.Gosched()
		select {
		case p.q <- t:
			return nil
		default:
		}
	}
	select {
	case p.q <- t:
		return nil
	case <-p.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refusal says why the pool takes no task.
func (p *Pool[R]) refusal() error {
	if p.current() == stateNew {
		return ErrNotStarted
	}
	return ErrClosed
}

// queued follows every task put in the queue: an elastic pool with no idle
// worker may grow, and a task that arrived after the stop's last sweep of
// the queue — no worker will take it — is reported by its submitter.
func (p *Pool[R]) queued() {
	if e := p.elastic; e != nil && p.idle.Load() == 0 {
		e.wake()
	}
	if p.swept.Load() {
		p.sweep()
	}
}

// finalSweep reports every task still queued as not run, once no worker
// will take one, and makes late submitters do the same for theirs.
func (p *Pool[R]) finalSweep() {
	p.swept.Store(true) // before the sweep: see enqueue
	p.sweep()
}

// sweep reports every task in the queue now as not run.
func (p *Pool[R]) sweep() {
	for {
		select {
		case t := <-p.q:
			if t.fn != nil { // a pill left by a worker that never took it
				p.drop(t)
			}
		default:
			return
		}
	}
}

// drop reports a task that will never run: to its submitter or the
// ErrorHandler first, then to OnDropped — which may run it elsewhere, and
// must not change what the submitter was told.
func (p *Pool[R]) drop(t task[R]) {
	p.dropped.Add(1)
	if t.res != nil {
		t.res.finish(ErrClosed)
	} else {
		p.handle(fmt.Errorf("workerpool: pool %q: task not run: %w", p.name, ErrClosed))
	}
	if f := p.cfg.onDropped; f != nil {
		p.guard("OnDropped", func() { f.(func(func(context.Context, R) error))(t.fn) })
	}
}

// Future is the result of a task submitted with [Submit].
type Future[T any] struct {
	done    chan struct{}
	settled atomic.Bool
	val     T
	err     error
}

// settle records the result, if none was recorded yet: a task dropped and
// then run by OnDropped does not change what its submitter was told.
func (f *Future[T]) settle(v T, err error) {
	if f.settled.CompareAndSwap(false, true) {
		f.val, f.err = v, err
		close(f.done)
	}
}

func (f *Future[T]) finish(err error) {
	var zero T
	f.settle(zero, err)
}

// Wait waits for the task and returns its result: the task's value and
// error, a [*PanicError] if it panicked, [ErrGoexit] if it called
// runtime.Goexit, or [ErrClosed] if the pool stopped before it ran. If ctx
// ends first, Wait returns ctx's error and the future can be waited for
// again. Wait is safe for concurrent use.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Done returns a channel that is closed once the result is ready.
func (f *Future[T]) Done() <-chan struct{} { return f.done }

// Submit submits a task that returns a value, as [Pool.Go] does, and
// returns a future for its result. It blocks only while the queue is full.
func Submit[R, T any](ctx context.Context, p *Pool[R], task func(context.Context, R) (T, error)) (*Future[T], error) {
	if task == nil {
		return nil, ErrNilTask
	}
	f := &Future[T]{done: make(chan struct{})}
	run := func(ctx context.Context, r R) error {
		v, err := task(ctx, r)
		f.settle(v, err)
		return err
	}
	if err := p.enqueue(ctx, taskOf(run, f)); err != nil {
		return nil, err
	}
	return f, nil
}
