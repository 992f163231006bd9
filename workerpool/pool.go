package workerpool

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
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

	q           chan task[R]
	mu          sync.RWMutex // held for reading while sending to q; for writing to close it
	closed      bool         // guarded by mu
	closing     chan struct{}
	closingOnce sync.Once

	runCtx    context.Context // the context of tasks
	cancelRun context.CancelCauseFunc
	dropping  atomic.Bool // queued tasks are reported as not run instead of run
	stopCtx   context.Context

	workers  []*worker[R] // fixed at construction
	serving  atomic.Bool  // the start succeeded; set before the workers are told
	dropped  atomic.Uint64
	restarts atomic.Uint64

	startOnce, stopOnce sync.Once
	startErr, stopErr   error
}

// task is one submitted task. res, if not nil, is told its outcome.
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
// the pool's [ErrorHandler]. Tasks submitted before the pool starts wait in
// the queue.
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
	if task == nil {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.q <- taskOf(task, nil):
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
func (p *Pool[R]) enqueue(ctx context.Context, t task[R]) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.q <- t:
		return nil
	default:
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
		f.val = v
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
	// Restarts counts how many times a worker rebuilt its resources.
	Restarts uint64
}

// Stats returns the pool's counters. It does not block; the counters are
// read one by one, so a snapshot taken while tasks run is approximate.
func (p *Pool[R]) Stats() Stats {
	s := Stats{
		Queued:   len(p.q),
		Dropped:  p.dropped.Load(),
		Restarts: p.restarts.Load(),
	}
	for _, w := range p.workers {
		if w.phase.Load() == phaseServing {
			s.Workers++
		}
		n := w.runs.Load()
		s.Busy += int(n & 1)
		s.Done += n >> 1
		s.Failed += w.failed.Load()
		s.Panics += w.panics.Load()
	}
	return s
}

// start opens every worker's resources, in parallel, and starts serving.
// If any open fails, or ctx ends first, it closes everything that opened
// before returning.
func (p *Pool[R]) start(ctx context.Context) error {
	p.startOnce.Do(func() { p.startErr = p.doStart(ctx) })
	return p.startErr
}

func (p *Pool[R]) doStart(ctx context.Context) error {
	began := time.Now()
	n := p.cfg.workers
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		return fmt.Errorf("workerpool: pool %q: start: %w", p.name, ErrClosed)
	}
	openCtx, cancelOpen := context.WithCancelCause(ctx)
	defer cancelOpen(nil)

	var (
		sem   = make(chan struct{}, p.cfg.startConcurrency)
		ready = make(chan openResult, n) // buffered: a worker never waits to report
		open  = make(chan struct{})      // closed once p.serving is set
	)
	for _, w := range p.workers {
		go w.run(openCtx, sem, ready, open)
	}

	var (
		firstErr error
		failed   int
	)
	for range n {
		select {
		case r := <-ready:
			if r.err != nil {
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("worker %d: %w", r.id, r.err)
					cancelOpen(firstErr)
				}
			}
			continue
		case <-ctx.Done():
			firstErr = fmt.Errorf("%w while workers were opening", context.Cause(ctx))
		}
		break
	}
	if firstErr == nil {
		p.serving.Store(true)
		close(open)
		p.log.Info("pool started",
			zap.Int("workers", n), zap.Strings("resources", p.plan.Resources()),
			zap.Duration("took", time.Since(began)))
		return nil
	}

	// Roll back: every worker closes what it opened. fx would roll back
	// with ctx, which may have expired, so the budget is a fresh one.
	cancelOpen(firstErr)
	close(open)
	rollback, cancel := rollbackContext(ctx, began)
	defer cancel()
	errs := []error{fmt.Errorf("workerpool: pool %q: start: %w", p.name, firstErr)}
	if failed > 1 {
		errs[0] = fmt.Errorf("%w (and %d other workers failed)", errs[0], failed-1)
	}
	if err := p.waitWorkers(rollback, "roll back"); err != nil {
		errs = append(errs, err)
	}
	p.closeQueue()
	p.dropQueued()
	err := errors.Join(errs...)
	p.log.Error("pool did not start", zap.Error(err), zap.Duration("took", time.Since(began)))
	return err
}

// rollbackContext gives a failed start as much time to roll back as it had
// to start: fx's own rollback would use the start context, maybe expired.
func rollbackContext(ctx context.Context, began time.Time) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithTimeout(base, dl.Sub(began))
	}
	return context.WithCancel(base)
}

type openResult struct {
	id  int
	err error
}

// closeQueue refuses new tasks and wakes blocked submitters. Idempotent.
func (p *Pool[R]) closeQueue() {
	// Wake blocked submitters first: they hold mu for reading.
	p.closingOnce.Do(func() { close(p.closing) })
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.q)
	}
}

// dropQueued reports every task still queued as not run. The queue must be
// closed.
func (p *Pool[R]) dropQueued() {
	for t := range p.q {
		p.drop(t)
	}
}

func (p *Pool[R]) drop(t task[R]) {
	p.dropped.Add(1)
	if t.res != nil {
		t.res.finish(ErrClosed)
		return
	}
	p.cfg.onError(fmt.Errorf("task not run: %w", ErrClosed))
}

// stop refuses new tasks, lets the queue drain, cancels running tasks when
// half the budget is gone, and closes every worker's resources, all within
// three quarters of ctx's budget.
func (p *Pool[R]) stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop(ctx) })
	return p.stopErr
}

func (p *Pool[R]) doStop(ctx context.Context) error {
	began := time.Now()
	own, cancel := context.WithCancel(ctx)
	cancelAt := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		budget := dl.Sub(began)
		cancel()
		own, cancel = context.WithDeadline(ctx, began.Add(budget*3/4))
		cancelAt = budget / 2
	}
	defer cancel()
	p.stopCtx = own // read by workers once the queue is closed
	p.closeQueue()
	if !p.serving.Load() { // never started, or the start failed and rolled back
		p.dropQueued()
		return nil
	}

	if cancelAt >= 0 {
		t := time.AfterFunc(cancelAt, p.cancelTasks)
		defer t.Stop()
	}
	err := p.waitWorkers(own, "stop")
	p.cancelTasks()
	if err != nil {
		err = fmt.Errorf("workerpool: pool %q: %w", p.name, err)
		p.log.Error("pool stopped with errors", zap.Error(err), zap.Duration("took", time.Since(began)))
		return err
	}
	p.log.Info("pool stopped", zap.Duration("took", time.Since(began)))
	return nil
}

// cancelTasks cancels running tasks and makes workers report queued ones as
// not run.
func (p *Pool[R]) cancelTasks() {
	p.dropping.Store(true)
	p.cancelRun(ErrClosed)
}

// waitWorkers waits until every worker has exited, and returns their
// teardown errors joined. If ctx ends first, it cancels running tasks and
// names every worker still busy and what it is busy with.
func (p *Pool[R]) waitWorkers(ctx context.Context, op string) error {
	for _, w := range p.workers {
		select {
		case <-w.exited:
			continue
		case <-ctx.Done():
		}
		break
	}
	if ctx.Err() != nil {
		p.cancelTasks()
	}
	var errs []error
	for _, w := range p.workers {
		select {
		case <-w.exited:
			if w.err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", w.id, w.err))
			}
			continue
		default:
		}
		if w.phase.Load() == phaseClosing {
			// Closing is bounded by ctx: the worker returns at once, with an
			// error naming the stuck resource.
			<-w.exited
			if w.err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", w.id, w.err))
			}
			continue
		}
		errs = append(errs, fmt.Errorf("%s: worker %d: stuck %s: %w", op, w.id, w.doing(), context.Cause(ctx)))
	}
	return errors.Join(errs...)
}

// Worker phases.
const (
	phaseOpening int32 = iota
	phaseServing
	phaseClosing
	phaseExited
)

// worker is one goroutine and its resources.
type worker[R any] struct {
	p     *Pool[R]
	id    int
	gen   int
	scope *resources.Scope[R]
	r     R

	phase  atomic.Int32
	runs   atomic.Uint64 // bit 0: running a task; the rest: tasks done × 2
	failed atomic.Uint64
	panics atomic.Uint64

	err    error // teardown error, written before exited is closed
	exited chan struct{}
}

func (w *worker[R]) identity() resources.Worker {
	return resources.Worker{Pool: w.p.name, ID: w.id, Generation: w.gen}
}

func (w *worker[R]) doing() string {
	switch w.phase.Load() {
	case phaseOpening:
		return "opening its resources"
	case phaseServing:
		if w.runs.Load()&1 == 1 {
			return "in a task that ignores its context"
		}
		return "serving"
	case phaseClosing:
		return "closing its resources"
	}
	return "exiting"
}

// run is the worker's goroutine: open, wait for the start's verdict, serve
// until the queue closes, close.
func (w *worker[R]) run(ctx context.Context, sem chan struct{}, ready chan<- openResult, open <-chan struct{}) {
	defer close(w.exited)
	defer w.phase.Store(phaseExited)
	p := w.p

	var err error
	select {
	case sem <- struct{}{}:
		began := time.Now()
		w.scope, err = p.plan.Open(ctx, w.identity(), p.ext)
		<-sem
		if err == nil {
			w.r = w.scope.Value()
			p.log.Debug("worker opened", zap.Int("worker", w.id), zap.Duration("took", time.Since(began)))
		}
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	ready <- openResult{id: w.id, err: err}

	<-open
	if !p.serving.Load() {
		if w.scope != nil {
			// The start waits for this with its own rollback budget.
			w.close(context.WithoutCancel(ctx))
		}
		return
	}
	w.phase.Store(phaseServing)
	w.serve()
	if w.scope != nil {
		w.close(p.stopCtx)
	}
}

func (w *worker[R]) close(ctx context.Context) {
	w.phase.Store(phaseClosing)
	began := time.Now()
	w.err = w.scope.Close(ctx)
	w.scope = nil
	w.p.log.Debug("worker closed", zap.Int("worker", w.id), zap.Duration("took", time.Since(began)), zap.Error(w.err))
}

// serve runs tasks until the queue is closed and empty.
func (w *worker[R]) serve() {
	p := w.p
	for t := range p.q {
		if p.dropping.Load() || w.scope == nil {
			p.drop(t)
			continue
		}
		w.runs.Add(1)
		panicked, err := w.exec(t.fn)
		w.runs.Add(1)
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
		if panicked || err != nil && errors.Is(err, resources.ErrBroken) {
			w.rebuild(err)
		}
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

// rebuild closes the worker's resources and opens fresh ones, backing off
// while the open fails, until it succeeds or the pool stops.
func (w *worker[R]) rebuild(cause error) {
	p := w.p
	log := p.log.With(zap.Int("worker", w.id))
	if err := w.scope.Close(context.WithoutCancel(p.runCtx)); err != nil {
		log.Error("closing broken resources", zap.Error(err))
	}
	w.scope = nil
	backoff := 10 * time.Millisecond
	for {
		w.gen++
		scope, err := p.plan.Open(p.runCtx, w.identity(), p.ext)
		if err == nil {
			w.scope, w.r = scope, scope.Value()
			p.restarts.Add(1)
			log.Info("worker restarted", zap.Int("generation", w.gen), zap.NamedError("cause", cause))
			return
		}
		log.Warn("worker did not reopen", zap.Int("generation", w.gen), zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-time.After(backoff):
		case <-p.runCtx.Done():
			return // the pool is stopping: the worker drops what it takes
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func newPanicError(r any) *PanicError {
	return &PanicError{Value: r, Stack: debug.Stack()}
}
