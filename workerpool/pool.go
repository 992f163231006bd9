package workerpool

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/internal/ring"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrClosed is returned to submitters once the pool has begun to stop, and
// reported for every accepted task that will never run. It is also the
// cause of the context tasks receive when their pool stops, and the error
// of a second start after a stop: a pool starts once.
var ErrClosed = errors.New("workerpool: pool closed")

// ErrNotStarted is returned to submitters before the pool has started.
// The pool takes no task before its OnStart hook has run: fx runs the hooks
// of a pool only if every hook before it started, and a task accepted by a
// pool that never starts could neither run nor be reported. Submit from an
// OnStart hook appended after the pool's, or after app.Start.
var ErrNotStarted = errors.New("workerpool: pool not started")

// ErrNilTask is returned when a nil task is submitted.
var ErrNilTask = errors.New("workerpool: nil task")

// ErrGoexit is the error of a task that called [runtime.Goexit] — as
// t.FailNow, testify's require and gomock do. Like a panic, it is returned
// to the task's submitter, and its worker rebuilds its resources and goes
// on.
var ErrGoexit = errors.New("workerpool: task called runtime.Goexit")

// PanicError is the error of a task that panicked: the value given to panic
// and the stack of the worker. It is the same type as [hooks.PanicError], so
// one errors.As finds a panic wherever it happened.
type PanicError = hooks.PanicError

// Pool runs tasks on a set of workers, each of which owns the resources R
// is built from. A Pool is made by [Provide] and started and stopped by its
// fx app, once; all its methods are safe for concurrent use.
//
// A task runs on one worker with that worker's R, and with a context that
// is cancelled, with cause [ErrClosed], when the pool's stop says so. A
// task must not keep R, or anything in it, after it returns.
type Pool[R any] struct {
	name string
	cfg  config
	plan *plan.Plan[R]
	ext  []reflect.Value
	log  *zap.Logger
	sd   fx.Shutdowner

	// The submit path reads only atomics and the queue.
	q         *ring.Ring[task[R]] // never closed: see enqueue
	accepting atomic.Bool         // state == serving or stopping
	// submitting counts the submissions between their look at accepting
	// and the end of their push: see admit. Submitters write it twice a
	// task: on a cache line of its own, away from what workers read.
	_          [64]byte
	submitting atomic.Int64
	_          [56]byte
	swept      atomic.Bool   // the last sweep of the queue is done: see queued
	dropping   atomic.Bool   // workers report queued tasks as not run: see beginDropping
	drops      chan struct{} // closed once dropping is set: workers stop retrying opens
	// A stop drains, until a deadline: workers retry opens while tasks
	// are left (see worthReopening).
	drainsUntil atomic.Bool

	mu        sync.Mutex
	state     state // guarded by mu; see transition
	stopBegun bool  // a stop has begun: a second one waits for it; guarded by mu
	// The pool failed while it drained for a stop (see failDraining);
	// guarded by mu.
	drainFailed bool
	closing     chan struct{} // closed when the pool stops taking tasks
	abandon     chan struct{} // closed when a stop gives up waiting: late workers end alone
	stopped     chan struct{} // closed when the first stop has returned
	stopErr     error         // the first stop's error, set before stopped closes
	// cancelStart makes the start under way give up, for a stop that comes
	// while the pool starts; startEnded is closed when the start returns.
	cancelStart context.CancelCauseFunc // guarded by mu
	startEnded  chan struct{}
	guarded     *time.Timer                   // StopGuard's: begins the stop if fx is late; guarded by mu
	feeders     []func(context.Context) error // see AddFeeder; guarded by mu
	size        int                           // a fixed pool's workers, as Resize sets; guarded by mu
	excess      atomic.Int32                  // workers of a fixed pool to retire: see Resize

	// tasks is the parent of the tasks' contexts, ended with a cause when
	// running tasks must stop.
	tasks       context.Context
	cancelTasks context.CancelCauseFunc

	slots   atomic.Pointer[[]*worker[R]] // grown by Resize only; see all
	elastic *elastic                     // nil for a pool of fixed size
	opts    plan.OpenOptions             // every worker's: see worker.open

	dropped  atomic.Uint64
	restarts atomic.Uint64
	recycles atomic.Uint64

	restartMu  sync.Mutex
	restartLog []time.Time // recent restart attempts, for MaxRestarts
}

func newPool[R any](name string, cfg config, pl *plan.Plan[R], ext []reflect.Value, log *zap.Logger, sd fx.Shutdowner) *Pool[R] {
	if log == nil {
		log = fallbackLogger()
	}
	p := &Pool[R]{
		name:    name,
		cfg:     cfg,
		plan:    pl,
		ext:     ext,
		log:     log.Named("workerpool").With(zap.String("pool", name)),
		sd:      sd,
		q:       ring.New[task[R]](cfg.queue, spinOf(cfg)),
		closing: make(chan struct{}),
		abandon: make(chan struct{}),
		size:    cfg.workers,
		stopped: make(chan struct{}),
		drops:   make(chan struct{}),

		startEnded: make(chan struct{}),
	}
	p.tasks, p.cancelTasks = context.WithCancelCause(context.Background())
	// The workers are made in one allocation: ten thousand of them cost
	// the start ten thousand allocations otherwise.
	slots := make([]*worker[R], cfg.workers)
	ws := make([]worker[R], cfg.workers)
	for i := range slots {
		ws[i].p, ws[i].id = p, i
		slots[i] = &ws[i]
	}
	p.slots.Store(&slots)
	// One for every worker: an open's frames stay small (see worker.open).
	// A worker's slot is published before it opens (see grow).
	p.opts = plan.OpenOptions{
		Begin:        func(id int, resource *string) { p.all()[id].opening.Store(resource) },
		CloseTimeout: cfg.closeTimeout,
		OnCaller:     cfg.lockThread,
		Goexit: func(id int, resource, constructor string, rollback error) {
			p.all()[id].openExited(resource, constructor, rollback)
		},
		GoexitError: errConstructorGoexit,
	}
	if cfg.minWorkers >= 0 {
		p.elastic = newElastic()
	}
	if cfg.events != nil || p.log.Core().Enabled(zap.DebugLevel) {
		p.plan = pl.Observe(func(e plan.Event) {
			if e.Closed {
				p.record(ResourceClosed(e))
			} else {
				p.record(ResourceOpened(e))
			}
		})
	}
	return p
}

// fallbackLogger is the logger of a pool in an app with no *zap.Logger:
// errors, and only errors, go to standard error, so that a failure is never
// silent.
func fallbackLogger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.StacktraceKey = ""
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), zap.ErrorLevel))
}

// all returns the pool's worker slots: those of an elastic pool, and those a
// fixed pool had or has (Resize may add some). The slice is never changed.
func (p *Pool[R]) all() []*worker[R] { return *p.slots.Load() }

// Name returns the pool's name.
func (p *Pool[R]) Name() string { return p.name }

// Stats is a snapshot of a pool's counters.
type Stats struct {
	// Workers is the number of workers whose resources are open and that
	// take tasks.
	Workers int
	// Busy is the number of workers running tasks: from taking a task to
	// telling its submitter, or, for tasks of Go that a worker takes one
	// after another, until it waits for the next.
	Busy int
	// Queued is the number of accepted tasks waiting for a worker: never
	// more than the queue holds (QueueSize), none with QueueSize(0).
	Queued int
	// Done counts the tasks that ran, whatever their outcome. A task that
	// has a submitter to tell (Do, Submit, GoReport, groups, Map) counts
	// before its submitter hears; tasks of Go that a worker runs one after
	// another count by the 64, and all once it waits or ends.
	Done uint64
	// Failed counts the tasks that returned an error, panicked or called
	// runtime.Goexit.
	Failed uint64
	// Panics counts the tasks that panicked or called runtime.Goexit.
	Panics uint64
	// Dropped counts the accepted tasks that never ran: their submitters
	// were told with ErrClosed, or, for a task whose submitter's context
	// ended while it was queued, with that context's cause. After a stop,
	// Done + Dropped is every task the pool accepted. (OnDropped sees only
	// the tasks the pool dropped, not those their submitters gave up on.)
	Dropped uint64
	// Opening is the number of workers opening or rebuilding their
	// resources; Closing, of those closing them.
	Opening, Closing int
	// Restarts counts how many times a worker rebuilt its resources after
	// a panic, a Goexit, ErrBroken or a failed check.
	Restarts uint64
	// Recycles counts rebuilds for MaxTasksPerWorker or MaxWorkerAge.
	Recycles uint64
}

// Stats returns the pool's counters. It does not block; the counters are
// read one by one, so a snapshot taken while tasks run is approximate.
func (p *Pool[R]) Stats() Stats {
	s := Stats{
		// Len reads the queue's head before its tail: pops in between
		// would count above the queue's size, which no queue holds.
		Queued:   min(p.q.Len(), p.q.Cap()),
		Dropped:  p.dropped.Load(),
		Restarts: p.restarts.Load(),
		Recycles: p.recycles.Load(),
	}
	for _, w := range p.all() {
		switch w.phase.Load() {
		case phaseServing:
			s.Workers++
		case phaseOpening, phaseRebuilding:
			s.Opening++
		case phaseClosing:
			s.Closing++
		}
		st := w.stat.Load()
		if st&1 == 1 && w.phase.Load() == phaseServing {
			s.Busy++
		}
		s.Done += st >> 1
		s.Failed += w.failed.Load()
		s.Panics += w.panics.Load()
	}
	return s
}

// spinOf is how many times a worker that finds the queue empty yields
// before it waits: without yields, a worker parked and readied for each
// task made Go with two workers take 1.7 times as long; with one, Go with
// a queue of 8 took 1.2 times as long as with two. A worker locked to its
// thread does not yield: its thread would be handed off.
func spinOf(cfg config) int {
	if cfg.lockThread {
		return 0
	}
	return 2
}
