package workerpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// task is one submitted task. res, if not nil, is told its outcome. A task
// with a nil fn whose res is a [job] runs the job. One with neither is a
// pill: the worker that takes it closes its resources with ctx and exits
// (the stop queues one pill per worker behind the tasks already queued);
// or, without ctx, a wake-up (see wakeWaiting).
type task[R any] struct {
	fn   func(context.Context, R) error
	res  outcome
	ctx  context.Context // the submitter's, as mode says; a pill's close context
	mode ctxMode
}

// job is a task that holds its function, its input and its outcome in one
// allocation, as those of Submit and Map do: a closure and a future would
// be two or three.
type job[R any] interface {
	outcome
	run(ctx context.Context, r R) error
}

// control reports whether t is a pill or a wake-up rather than a task.
func (t task[R]) control() bool { return t.fn == nil && t.res == nil }

// call runs the task.
func (t task[R]) call(ctx context.Context, r R) error {
	if t.fn != nil {
		return t.fn(ctx, r)
	}
	return t.res.(job[R]).run(ctx, r)
}

// function is the task as a func, for OnDropped.
func (t task[R]) function() func(context.Context, R) error {
	if t.fn != nil {
		return t.fn
	}
	return t.res.(job[R]).run
}

// ctxMode says what of its submitter's context a task's context carries.
type ctxMode uint8

const (
	ctxPool   ctxMode = iota // nothing: context.Background, or a pill
	ctxValues                // its values (Go): the pool's cancellation only
	ctxBound                 // its values and its cancellation (Do, Submit, GoReport, groups)
	ctxShared                // ctx itself, which the job's cancel ends at the pool's stop (Map)
)

// sharedCtx is a job whose context, shared with other tasks, the pool's
// stop cancels with the job's cancel: Map makes one context for all its
// tasks, not one per task.
type sharedCtx interface {
	cancelCause() context.CancelCauseFunc
}

// modeOf says what a task's context takes of ctx: nothing of
// context.Background, and of a context that never ends, only its values.
func modeOf(ctx context.Context, bound bool) ctxMode {
	switch {
	case background(ctx):
		return ctxPool
	case bound && ctx.Done() != nil:
		return ctxBound
	}
	return ctxValues
}

// outcome receives what became of a task, exactly once: how it ended and
// its error (nil if it succeeded), a *PanicError, ErrGoexit, or, if it
// never ran, ErrClosed or its submitter's context's cause.
type outcome interface{ finish(Outcome, error) }

// beginner is an outcome that a worker asks, once it has taken the task,
// whether the task may still begin: a group's (see Group.begin).
type beginner interface{ begin() bool }

// Outcome is what became of a task.
type Outcome uint8

const (
	// Succeeded: the task ran and returned nil.
	Succeeded Outcome = iota + 1
	// Failed: the task ran and returned an error.
	Failed
	// Panicked: the task panicked (the error is a *PanicError) or called
	// runtime.Goexit (ErrGoexit).
	Panicked
	// NotRun: the task never ran. The error is ErrClosed if the pool
	// stopped first, or the cause of its submitter's context if that ended
	// before a worker took the task.
	NotRun
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case Panicked:
		return "panicked"
	case NotRun:
		return "not run"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// ErrNilContext is returned when a task is submitted with a nil context.
var ErrNilContext = errors.New("workerpool: nil context")

// Go submits a task and returns without waiting for it to run. It blocks
// only while the queue is full, until there is room, the pool stops
// ([ErrClosed]) or ctx is done (ctx's error). Before the pool starts, Go
// returns [ErrNotStarted].
//
// The task's context carries ctx's values but not its cancellation, as
// [context.WithoutCancel] does: a fire-and-forget task outlives the
// request that submitted it. It ends when the pool's stop says so. The
// task's own error goes to the pool's [ErrorHandler].
func (p *Pool[R]) Go(ctx context.Context, fn func(context.Context, R) error) error {
	if fn == nil {
		return ErrNilTask
	}
	if ctx == nil {
		return ErrNilContext
	}
	if background(ctx) {
		return p.enqueue(ctx, task[R]{fn: fn})
	}
	return p.enqueue(ctx, task[R]{fn: fn, ctx: ctx, mode: ctxValues})
}

// background reports whether ctx is context.Background or context.TODO:
// a task's context then carries nothing of it.
func background(ctx context.Context) bool {
	return ctx == context.Background() || ctx == context.TODO()
}

// GoReport submits a task as [Pool.Go] does, and tells report what became
// of it, exactly once: succeeded, failed, panicked, or never ran. It is the
// submission of a feeder, such as a message queue's consumer, which acks,
// retries or leaves each message by its outcome. report runs on the
// worker's goroutine, or on the goroutine that drops the task; it must be
// quick and safe for concurrent use. A panic in report is logged, and the
// worker goes on. Errors reported go to report only,
// never to the ErrorHandler. If GoReport returns an error, the task was
// not accepted and report is never called.
//
// Unlike Go's, the task's context ends when ctx does (with ctx's cause),
// as well as when the pool's stop says so (with cause [ErrClosed]); if
// ctx has ended by the time a worker takes the task, it does not run and
// is reported NotRun with ctx's cause.
func (p *Pool[R]) GoReport(ctx context.Context, task func(context.Context, R) error, report func(Outcome, error)) error {
	if task == nil || report == nil {
		return ErrNilTask
	}
	if ctx == nil {
		return ErrNilContext
	}
	return p.enqueue(ctx, taskOf(ctx, true, task, reportFunc(report)))
}

// reportFunc is the outcome of a task of GoReport.
type reportFunc func(Outcome, error)

func (f reportFunc) finish(o Outcome, err error) { f(o, err) }

func taskOf[R any](ctx context.Context, bound bool, fn func(context.Context, R) error, res outcome) task[R] {
	t := task[R]{fn: fn, res: res, mode: modeOf(ctx, bound)}
	if t.mode != ctxPool {
		t.ctx = ctx
	}
	return t
}

// TryGo submits a task only if a worker or the queue has room now. It never
// blocks. It returns false if the queue is full, the pool is not serving,
// or task is nil.
func (p *Pool[R]) TryGo(task func(context.Context, R) error) bool {
	return task != nil && p.tryEnqueue(taskOf[R](context.Background(), false, task, nil))
}

// tryEnqueue puts t in the queue if the pool takes tasks and the queue
// has room now, and reports whether it did.
func (p *Pool[R]) tryEnqueue(t task[R]) bool {
	if !p.admit() {
		return false
	}
	ok := p.q.TryPush(t)
	p.submitting.Add(-1)
	if ok {
		p.queued()
	}
	return ok
}

// Do submits a task and waits for it. It returns the task's error, a
// [*PanicError] if it panicked, [ErrGoexit] if it called runtime.Goexit,
// [ErrClosed] if the pool stopped before it ran, or ctx's error if ctx
// ended first.
//
// The task's context carries ctx's values and ends when ctx ends (with
// ctx's cause) or when the pool's stop says so (with cause [ErrClosed]),
// whichever is first. A task whose ctx has ended by the time a worker takes
// it does not run.
func (p *Pool[R]) Do(ctx context.Context, task func(context.Context, R) error) error {
	if task == nil {
		return ErrNilTask
	}
	if ctx == nil {
		return ErrNilContext
	}
	w := waiters.Get().(*waiter)
	if err := p.enqueue(ctx, taskOf(ctx, true, task, w)); err != nil {
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

func (w *waiter) finish(_ Outcome, err error) { w.ch <- err }

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan error, 1)} }}

// enqueue puts t in the queue, waiting for room until ctx is done or the
// pool closes.
//
// Submitting takes no lock: a submission counts itself while it pushes
// (admit), and a stop waits for those admitted before its refusal, so
// that under Drain each is queued ahead of the pills. A task that still
// arrives late — after a pool failed, say — either reaches a worker, is
// dropped by the stop's last sweep of the queue, or, if it arrived after
// that sweep, is dropped by its submitter in queued. It is never left
// behind unreported.
func (p *Pool[R]) enqueue(ctx context.Context, t task[R]) error {
	if !p.admit() {
		return p.refusal()
	}
	if !p.q.TryPush(t) {
		if err := p.enqueueSlow(ctx, t); err != nil {
			p.submitting.Add(-1)
			return err
		}
	}
	p.submitting.Add(-1)
	p.queued()
	return nil
}

// admit reports whether the pool takes a task now; if it does, the
// caller pushes it and then decrements p.submitting. The count is what
// makes a Drain run every task a submitter was told was taken: a stop
// refuses new tasks and then waits for the submissions that were admitted
// before (awaitSubmitters), so that each is queued ahead of the pills.
// Counting first and then looking — while the stop refuses first and
// then counts — one of the two sees the other.
func (p *Pool[R]) admit() bool {
	p.submitting.Add(1)
	if !p.accepting.Load() {
		p.submitting.Add(-1)
		return false
	}
	return true
}

// awaitSubmitters waits, once the pool refuses new tasks, for the
// submissions admitted before to be queued or given up: their submitters
// only push, or wait for room until the pool's closing channel — closed
// with the refusal — tells them to give up.
func (p *Pool[R]) awaitSubmitters() {
	for p.submitting.Load() != 0 {
		runtime.Gosched()
	}
}

// enqueueSlow waits for room in the queue. With no more workers than Ps,
// it first yields a few times, as a mutex spins: a worker is about to take
// a task, and parking in a select costs more than the wait. With more, it
// does not: a yield puts the submitter behind every runnable worker, on
// the global run queue, while a parked submitter is readied by the worker
// that makes room (with 64 workers, yielding made Go 2.9 times slower).
func (p *Pool[R]) enqueueSlow(ctx context.Context, t task[R]) error {
	if p.cfg.workers <= runtime.GOMAXPROCS(0) {
		for range 4 {
			runtime.Gosched()
			if p.q.TryPush(t) {
				return nil
			}
		}
	}
	if p.q.Push(t, p.closing, ctx.Done()) {
		return nil
	}
	select {
	case <-p.closing:
		return ErrClosed
	default:
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
	if e := p.elastic; e != nil && p.q.Idle() == 0 {
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
		var t task[R]
		if !p.q.TryPop(&t) {
			return
		}
		if !t.control() { // not a pill left by a worker that never took it
			p.drop(t)
		}
	}
}

// drop reports a task that will never run: to its submitter or the
// ErrorHandler first, then to OnDropped — which may run it elsewhere, and
// must not change what the submitter was told. A task whose submitter's
// context ended while it was queued is not the pool's to drop: its
// submitter is told that context's cause, as a worker that took it would
// tell it, and OnDropped never sees it. Unless the stop ended that context
// (its cause is ErrClosed): a group's context ends when one of its tasks
// fails, as one that this stop cancels or drops does.
func (p *Pool[R]) drop(t task[R]) {
	if err := givenUp(&t); err != nil && !errors.Is(err, ErrClosed) {
		p.dropped.Add(1) // before its submitter hears
		p.tell(t, NotRun, err)
		return
	}
	p.dropped.Add(1)
	if t.res != nil {
		p.tell(t, NotRun, ErrClosed)
	} else {
		p.handle(fmt.Errorf("workerpool: pool %q: task not run: %w", p.name, ErrClosed))
	}
	if f := p.cfg.onDropped; f != nil {
		ctx := t.ctx
		if t.mode == ctxPool {
			ctx = context.Background()
		}
		p.guardAlone("OnDropped", func() { f.(func(context.Context, func(context.Context, R) error))(ctx, t.function()) })
	}
}

// givenUp returns the cause of the context of a task bound to its
// submitter's context (Do, Submit, GoReport, groups, Map), if that context
// has ended: the task is not to run.
func givenUp[R any](t *task[R]) error {
	if t.mode != ctxBound && t.mode != ctxShared {
		return nil
	}
	return context.Cause(t.ctx)
}

// Future is the result of a task submitted with [Submit].
type Future[T any] struct {
	state atomic.Uint32  // pending, settling, settled
	wg    sync.WaitGroup // done when settled: Wait without a deadline
	done  atomic.Value   // chan struct{}, made by the first Done or Wait that needs it
	val   T
	err   error
}

// Future states.
const (
	pending uint32 = iota
	settling
	settled
)

// closed is the Done channel of a future settled before anyone asked for it.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// settle records the result, if none was recorded yet: a task dropped and
// then run by OnDropped does not change what its submitter was told.
func (f *Future[T]) settle(v T, err error) {
	if !f.state.CompareAndSwap(pending, settling) {
		return
	}
	f.val, f.err = v, err
	f.state.Store(settled)
	if !f.done.CompareAndSwap(nil, closed) {
		close(f.done.Load().(chan struct{}))
	}
	f.wg.Done()
}

func (f *Future[T]) finish(_ Outcome, err error) {
	var zero T
	f.settle(zero, err)
}

// Wait waits for the task and returns its result: the task's value and
// error, a [*PanicError] if it panicked, [ErrGoexit] if it called
// runtime.Goexit, or [ErrClosed] if the pool stopped before it ran. If ctx
// ends first, Wait returns ctx's error and the future can be waited for
// again. Wait is safe for concurrent use.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	if f.state.Load() == settled {
		return f.val, f.err
	}
	if ctx.Done() == nil { // a context that never ends: no channel needed
		f.wg.Wait()
		return f.val, f.err
	}
	select {
	case <-f.Done():
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Done returns a channel that is closed once the result is ready.
func (f *Future[T]) Done() <-chan struct{} {
	if c := f.done.Load(); c != nil {
		return c.(chan struct{})
	}
	c := make(chan struct{})
	if f.done.CompareAndSwap(nil, c) {
		return c
	}
	return f.done.Load().(chan struct{}) // settled, or made by another caller
}

// Submit submits a task that returns a value and returns a future for its
// result. It blocks only while the queue is full. The task's context is as
// [Pool.Do]'s: it carries ctx's values and ends when ctx ends or the pool's
// stop says so.
func Submit[R, T any](ctx context.Context, p *Pool[R], task func(context.Context, R) (T, error)) (*Future[T], error) {
	if task == nil {
		return nil, ErrNilTask
	}
	if ctx == nil {
		return nil, ErrNilContext
	}
	s := &submission[R, T]{fn: task}
	s.wg.Add(1)
	if err := p.enqueue(ctx, taskOf[R](ctx, true, nil, s)); err != nil {
		return nil, err
	}
	return &s.Future, nil
}

// submission is a task of Submit and its future, in one allocation.
type submission[R, T any] struct {
	Future[T]
	fn func(context.Context, R) (T, error)
	v  T // the task's value, kept by run for finish
}

// run runs the task and keeps its value: the future is settled by finish,
// after the worker has counted the task, so that a submitter who has its
// result sees it in Stats.
func (s *submission[R, T]) run(ctx context.Context, r R) error {
	v, err := s.fn(ctx, r)
	s.v = v
	return err
}

func (s *submission[R, T]) finish(o Outcome, err error) {
	if o == Succeeded || o == Failed {
		s.settle(s.v, err)
		return
	}
	s.Future.finish(o, err)
}
