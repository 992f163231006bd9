package workerpool

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// ErrClosed is returned to submitters once the pool has begun to stop, and
// reported for every accepted task that will never run. It is also the
// cause of the context tasks receive when their pool stops.
var ErrClosed = errors.New("workerpool: pool closed")

// ErrNotStarted is returned to submitters before the pool has started.
// The pool takes no task before its OnStart hook has run: fx runs the hooks
// of a pool only if every hook before it started, and a task accepted by a
// pool that never starts could neither run nor be reported. Submit from an
// OnStart hook appended after the pool's, or after app.Start.
var ErrNotStarted = errors.New("workerpool: pool not started")

// ErrNilTask is returned when a nil task is submitted.
var ErrNilTask = errors.New("workerpool: nil task")

// PanicError is the error of a task that panicked: the value given to panic
// and the stack of the worker. It is the same type as [hooks.PanicError], so
// one errors.As finds a panic wherever it happened.
type PanicError = hooks.PanicError

// Pool runs tasks on a fixed set of workers, each of which owns the
// resources R is built from. A Pool is made by [Provide] and started and
// stopped by its fx app; all its methods are safe for concurrent use.
//
// A task runs on one worker with that worker's R, and with a context that
// is cancelled, with cause [ErrClosed], when the pool's stop deadline
// nears. A task must not keep R, or anything in it, after it returns.
type Pool[R any] struct {
	name string
	cfg  config
	plan *resources.Plan[R]
	ext  []reflect.Value
	log  *zap.Logger
	sd   fx.Shutdowner

	q           chan task[R]  // never closed: see enqueue
	accepting   atomic.Bool   // started and not yet stopping: taking tasks
	closed      atomic.Bool   // stopping, stopped or failed
	closing     chan struct{} // closed with closed: wakes blocked submitters
	closingOnce sync.Once
	swept       atomic.Bool // the stop swept the queue for the last time
	onDropped   func(func(context.Context, R) error)

	runCtx    context.Context // the context of tasks
	cancelRun context.CancelCauseFunc
	dropping  atomic.Bool // queued tasks are reported as not run instead of run
	stopCtx   context.Context

	workers  []*worker[R] // fixed at construction: the slots of an elastic pool
	elastic  *elastic     // nil for a pool of fixed size
	serving  atomic.Bool  // the start succeeded; set before the workers are told
	dropped  atomic.Uint64
	restarts atomic.Uint64
	recycles atomic.Uint64

	restartMu  sync.Mutex
	restartLog []time.Time // recent restart attempts, for MaxRestarts
	failOnce   sync.Once

	startOnce, stopOnce sync.Once
	startErr, stopErr   error
}

// task is one submitted task. res, if not nil, is told its outcome. A task
// with a nil fn is the stop's pill: the worker that takes it exits.
type task[R any] struct {
	fn  func(context.Context, R) error
	res outcome
}

// outcome receives what became of a task, exactly once: its error (nil if
// it succeeded), a *PanicError, or ErrClosed if it never ran.
type outcome interface{ finish(error) }

func newPool[R any](name string, cfg config, plan *resources.Plan[R], ext []reflect.Value, log *zap.Logger, sd fx.Shutdowner) *Pool[R] {
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pool[R]{
		name:    name,
		cfg:     cfg,
		plan:    plan,
		ext:     ext,
		log:     log.Named("workerpool").With(zap.String("pool", name)),
		sd:      sd,
		q:       make(chan task[R], cfg.queue),
		closing: make(chan struct{}),
	}
	p.runCtx, p.cancelRun = context.WithCancelCause(context.Background())
	p.workers = make([]*worker[R], cfg.workers)
	for i := range p.workers {
		p.workers[i] = &worker[R]{p: p, id: i, exited: make(chan struct{})}
	}
	if cfg.minWorkers >= 0 {
		p.elastic = newElastic()
		for _, w := range p.workers[cfg.minWorkers:] {
			w.phase.Store(phaseVacant)
			close(w.exited)
		}
	}
	if cfg.events != nil || p.log.Core().Enabled(zap.DebugLevel) {
		p.plan = plan.Observe(func(e resources.Event) {
			if e.Closed {
				p.record(ResourceClosed(e))
			} else {
				p.record(ResourceOpened(e))
			}
		})
	}
	p.onDropped, _ = cfg.onDropped.(func(func(context.Context, R) error))
	if p.cfg.onError == nil {
		p.cfg.onError = func(err error) { p.log.Error("task failed", zap.Error(err)) }
	}
	return p
}

// Name returns the pool's name.
func (p *Pool[R]) Name() string { return p.name }

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

// TryGo submits a task only if the queue has room now. It never blocks. It
// returns false if the queue is full, the pool has begun to stop, or task is
// nil.
func (p *Pool[R]) TryGo(task func(context.Context, R) error) bool {
	if task == nil || !p.accepting.Load() {
		return false
	}
	select {
	case p.q <- taskOf(task, nil):
		p.queued()
		return true
	default:
		return false
	}
}

// Do submits a task and waits for it. It returns the task's error, a
// [*PanicError] if it panicked, [ErrClosed] if the pool stopped before it
// ran, or ctx's error if ctx ended first — in which case the task may still
// run later.
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
	if p.closed.Load() {
		return ErrClosed
	}
	return ErrNotStarted
}

// queued follows every task put in the queue: an elastic pool with no idle
// worker may grow, and a task that arrived after the stop's last sweep of
// the queue — no worker will take it — is reported by its submitter.
func (p *Pool[R]) queued() {
	if e := p.elastic; e != nil && e.idle.Load() == 0 {
		e.wake()
	}
	if p.swept.Load() {
		p.sweep()
	}
}

// Future is the result of a task submitted with [Submit].
type Future[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (f *Future[T]) finish(err error) {
	f.err = err
	close(f.done)
}

// Wait waits for the task and returns its result: the task's value and
// error, a [*PanicError] if it panicked, or [ErrClosed] if the pool stopped
// before it ran. If ctx ends first, Wait returns ctx's error and the future
// can be waited for again. Wait is safe for concurrent use.
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
		select {
		case <-f.done: // dropped, then run by OnDropped: the future is told
		default:
			f.val = v
		}
		return err
	}
	if err := p.enqueue(ctx, taskOf(run, f)); err != nil {
		return nil, err
	}
	return f, nil
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	// Workers is the number of workers whose resources are open.
	Workers int
	// Busy is the number of workers running a task.
	Busy int
	// Queued is the number of accepted tasks waiting for a worker.
	Queued int
	// Done counts the tasks that ran, whatever their outcome.
	Done uint64
	// Failed counts the tasks that returned an error or panicked.
	Failed uint64
	// Panics counts the tasks that panicked.
	Panics uint64
	// Dropped counts the accepted tasks that never ran: their submitters
	// were told with ErrClosed.
	Dropped uint64
	// Opening is the number of workers opening or rebuilding their
	// resources; Closing, of those closing them.
	Opening, Closing int
	// Restarts counts how many times a worker rebuilt its resources after
	// a panic or ErrBroken.
	Restarts uint64
	// Recycles counts rebuilds for MaxTasksPerWorker or MaxWorkerAge.
	Recycles uint64
}

// Stats returns the pool's counters. It does not block; the counters are
// read one by one, so a snapshot taken while tasks run is approximate.
func (p *Pool[R]) Stats() Stats {
	s := Stats{
		Queued:   len(p.q),
		Dropped:  p.dropped.Load(),
		Restarts: p.restarts.Load(),
		Recycles: p.recycles.Load(),
	}
	started := p.serving.Load()
	for _, w := range p.workers {
		switch w.phase.Load() {
		case phaseServing:
			if started {
				s.Workers++
			}
		case phaseOpening:
			if started {
				s.Opening++
			}
		case phaseRebuilding:
			s.Opening++
		case phaseClosing:
			s.Closing++
		}
		if w.busy() {
			s.Busy++
		}
		s.Done += w.done.Load()
		s.Failed += w.failed.Load()
		s.Panics += w.panics.Load()
	}
	return s
}
