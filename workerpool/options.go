package workerpool

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/fxpool/fxpool/resources"
)

// An Option configures a pool made by [Provide]. Each option is a named
// value whose String is how it was written; an invalid value makes fx.New
// fail, naming the pool and the option.
type Option interface {
	apply(*config) error
	String() string
}

type config struct {
	workers          int
	queue            int // -1: the default, 4 × workers
	startConcurrency int // 0: all workers at once
	decls            []resources.Declaration
	named            bool
	private          bool
	onError          func(error)
	onDropped        any // func(context.Context, func(context.Context, R) error)
	maxRestarts      int // 0: no limit
	restartWindow    time.Duration
	backoffMin       time.Duration
	backoffMax       time.Duration
	maxTasks         int           // 0: no limit
	maxAge           time.Duration // 0: no limit
	stopPolicy       StopPolicy
	clock            Clock
	events           func(Event)
	minWorkers       int           // -1: fixed size; else Elastic's min
	idle             time.Duration // Elastic's idle timeout
	checkIdle        time.Duration // 0: no health checks
	closeTimeout     time.Duration // bounds the closes nobody else bounds
	lockThread       bool          // LockOSThread
	configFrom       configFrom
}

// configFrom is what OptionsFrom asks of the fx graph.
type configFrom struct {
	t reflect.Type
	f func(any) []Option
}

// newConfig applies opts to the defaults. The result is raw: final fills
// in the defaults that depend on other options, once OptionsFrom's options
// are applied too.
func newConfig(opts []Option) (config, error) {
	c := config{
		workers:      runtime.GOMAXPROCS(0),
		queue:        -1,
		minWorkers:   -1,
		backoffMin:   10 * time.Millisecond,
		backoffMax:   5 * time.Second,
		closeTimeout: 10 * time.Second,
		clock:        systemClock{},
	}
	if err := c.apply(opts); err != nil {
		return c, err
	}
	_, err := c.final()
	return c, err
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			return fmt.Errorf("nil option")
		}
		if err := o.apply(c); err != nil {
			return fmt.Errorf("%v: %w", o, err)
		}
	}
	return nil
}

// withConfig applies the options that OptionsFrom made from the app's
// config, after those given to Provide, and returns the final config.
func (c config) withConfig(opts []Option) (config, error) {
	decls, named, private, from := len(c.decls), c.named, c.private, c.configFrom.f != nil
	if err := c.apply(opts); err != nil {
		return c, err
	}
	if len(c.decls) != decls || c.named != named || c.private != private || (c.configFrom.f != nil) != from {
		return c, fmt.Errorf("Resources, Named, Private and OptionsFrom must be given to Provide")
	}
	return c.final()
}

// final fills in the defaults that depend on other options, and checks
// the options that depend on each other.
func (c config) final() (config, error) {
	if c.queue < 0 {
		c.queue = 4 * c.workers
	}
	if c.minWorkers == c.workers {
		c.minWorkers = -1 // Elastic(n, n, d) is a fixed pool
	}
	if c.minWorkers >= 0 && c.queue == 0 {
		return c, fmt.Errorf("workerpool.Elastic needs a queue: an elastic pool grows when tasks wait in it, and with workerpool.QueueSize(0) none ever does")
	}
	if c.startConcurrency == 0 || c.startConcurrency > c.workers {
		c.startConcurrency = c.workers
	}
	return c, nil
}

// Workers sets how many workers the pool runs, each with its own resources.
// The default is runtime.GOMAXPROCS(0). n must be at least 1.
func Workers(n int) Option { return workersOption(n) }

type workersOption int

func (o workersOption) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("must be at least 1")
	}
	c.workers, c.minWorkers = int(o), -1
	return nil
}

func (o workersOption) String() string { return fmt.Sprintf("workerpool.Workers(%d)", int(o)) }

// QueueSize sets how many accepted tasks may wait for a worker. When the
// queue is full, [Pool.Go] blocks and [Pool.TryGo] refuses. 0 makes every
// submission wait for a free worker; an [Elastic] pool needs a queue (it
// grows when tasks wait in it), and fx.New says so. The default is 4 ×
// Workers (Elastic's max), set when the pool is built: [Pool.Resize] does
// not change the queue.
func QueueSize(n int) Option { return queueOption(n) }

type queueOption int

func (o queueOption) apply(c *config) error {
	if o < 0 {
		return fmt.Errorf("must not be negative")
	}
	c.queue = int(o)
	return nil
}

func (o queueOption) String() string { return fmt.Sprintf("workerpool.QueueSize(%d)", int(o)) }

// StartConcurrency bounds how many workers open their resources at once
// while the pool starts: useful when the resources share a server that
// limits new connections. The default is all workers at once. Once an open
// fails, the workers still waiting for their turn never open; one that
// took its turn as the failure came may still open, and the start's
// rollback closes it with the rest.
func StartConcurrency(n int) Option { return startConcurrencyOption(n) }

type startConcurrencyOption int

func (o startConcurrencyOption) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("must be at least 1")
	}
	c.startConcurrency = int(o)
	return nil
}

func (o startConcurrencyOption) String() string {
	return fmt.Sprintf("workerpool.StartConcurrency(%d)", int(o))
}

// Resources declares the resources every worker opens for itself; see
// package resources. Several Resources options add up.
func Resources(decls ...resources.Declaration) Option { return resourcesOption(decls) }

type resourcesOption []resources.Declaration

func (o resourcesOption) apply(c *config) error {
	c.decls = append(c.decls, o...)
	return nil
}

func (o resourcesOption) String() string {
	names := make([]string, len(o))
	for i, d := range o {
		names[i] = d.String()
	}
	return fmt.Sprintf("workerpool.Resources(%s)", strings.Join(names, ", "))
}

// Named provides the pool to fx under its name, as a value tagged
// name:"<pool name>", so that several pools with the same task parameter
// can live in one app.
func Named() Option { return namedOption{} }

type namedOption struct{}

func (namedOption) apply(c *config) error { c.named = true; return nil }
func (namedOption) String() string        { return "workerpool.Named()" }

// Private provides the pool only to the fx.Module it is declared in, as
// fx.Private does for a constructor.
func Private() Option { return privateOption{} }

type privateOption struct{}

func (privateOption) apply(c *config) error { c.private = true; return nil }
func (privateOption) String() string        { return "workerpool.Private()" }

// ErrorHandler receives the errors of tasks submitted with [Pool.Go] and
// [Pool.TryGo], whose submitters do not wait for them, and the [ErrClosed]
// of such tasks that never ran. It runs on the worker's goroutine and must
// be safe for concurrent use; a panic in it is logged, and the worker goes
// on. The task it hears of is counted in [Pool.Stats] already. The default
// logs each error to the app's *zap.Logger or, if it has none, to standard
// error. A pool has one: a second ErrorHandler fails fx.New.
func ErrorHandler(f func(error)) Option { return errorHandlerOption{f} }

type errorHandlerOption struct{ f func(error) }

func (o errorHandlerOption) apply(c *config) error {
	if o.f == nil {
		return fmt.Errorf("nil func")
	}
	if c.onError != nil {
		return fmt.Errorf("given twice: a pool has one ErrorHandler")
	}
	c.onError = o.f
	return nil
}

func (errorHandlerOption) String() string { return "workerpool.ErrorHandler(...)" }

// MaxRestarts fails the pool when its workers rebuild their resources after
// a panic or [resources.ErrBroken] — or try to — more than n times within
// the given window, counted across the pool: the restart intensity of an
// OTP supervisor. A failed pool takes no more tasks, reports every queued
// task as not run, and asks fx to stop the app with exit code 1; so does a
// pool that drains for a stop, whose workers then stop retrying. n must be
// at least 1 and within positive. By default there is no limit.
func MaxRestarts(n int, within time.Duration) Option { return maxRestartsOption{n, within} }

type maxRestartsOption struct {
	n      int
	within time.Duration
}

func (o maxRestartsOption) apply(c *config) error {
	if o.n < 1 || o.within <= 0 {
		return fmt.Errorf("want n at least 1 and a positive window")
	}
	c.maxRestarts, c.restartWindow = o.n, o.within
	return nil
}

func (o maxRestartsOption) String() string {
	return fmt.Sprintf("workerpool.MaxRestarts(%d, %v)", o.n, o.within)
}

// RestartBackoff sets how long a worker waits before it tries again to
// reopen resources that failed to open: first about min, doubling each time
// up to max, each wait drawn at random between half and all of it. The
// default is RestartBackoff(10ms, 5s).
func RestartBackoff(min, max time.Duration) Option { return backoffOption{min, max} }

type backoffOption struct{ min, max time.Duration }

func (o backoffOption) apply(c *config) error {
	if o.min <= 0 || o.max < o.min {
		return fmt.Errorf("want 0 < min <= max")
	}
	c.backoffMin, c.backoffMax = o.min, o.max
	return nil
}

func (o backoffOption) String() string {
	return fmt.Sprintf("workerpool.RestartBackoff(%v, %v)", o.min, o.max)
}

// MaxTasksPerWorker makes a worker rebuild its resources after every n
// tasks, like Python's maxtasksperchild: a cure for resources that grow or
// leak with use. The rebuild follows the n-th task at once, before the
// worker takes another, and counts in Stats.Recycles then. The other
// workers keep serving meanwhile.
func MaxTasksPerWorker(n int) Option { return maxTasksOption(n) }

type maxTasksOption int

func (o maxTasksOption) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("must be at least 1")
	}
	c.maxTasks = int(o)
	return nil
}

func (o maxTasksOption) String() string {
	return fmt.Sprintf("workerpool.MaxTasksPerWorker(%d)", int(o))
}

// MaxWorkerAge makes a worker rebuild its resources, before its next task,
// once they are older than d: for credentials that expire or connections
// that a server drops after a while.
func MaxWorkerAge(d time.Duration) Option { return maxAgeOption(d) }

type maxAgeOption time.Duration

func (o maxAgeOption) apply(c *config) error {
	if o <= 0 {
		return fmt.Errorf("must be positive")
	}
	c.maxAge = time.Duration(o)
	return nil
}

func (o maxAgeOption) String() string {
	return fmt.Sprintf("workerpool.MaxWorkerAge(%v)", time.Duration(o))
}

// StopPolicy says what a stopping pool does with the tasks still queued.
type StopPolicy int

const (
	// Drain runs the queued tasks before the workers close, as long as the
	// first two fifths of the stop budget last. The default.
	Drain StopPolicy = iota
	// Cancel runs no queued task: each is reported as not run, with
	// [ErrClosed], and the context of running tasks is cancelled at once.
	Cancel
	// DropQueued runs no queued task, as Cancel, but lets running tasks
	// finish: their context is cancelled only at two fifths of the stop
	// budget, as under Drain. The stop of a command told to quit: finish
	// what is in hand, start nothing new.
	DropQueued
)

// String returns the policy as it is written: workerpool.Drain, ...
func (s StopPolicy) String() string {
	switch s {
	case Drain:
		return "workerpool.Drain"
	case Cancel:
		return "workerpool.Cancel"
	case DropQueued:
		return "workerpool.DropQueued"
	}
	return fmt.Sprintf("workerpool.StopPolicy(%d)", int(s))
}

// OnStop sets the [StopPolicy]. The default is Drain.
func OnStop(policy StopPolicy) Option { return stopOption(policy) }

type stopOption StopPolicy

func (o stopOption) apply(c *config) error {
	if o != stopOption(Drain) && o != stopOption(Cancel) && o != stopOption(DropQueued) {
		return fmt.Errorf("unknown policy")
	}
	c.stopPolicy = StopPolicy(o)
	return nil
}

func (o stopOption) String() string { return fmt.Sprintf("workerpool.OnStop(%v)", StopPolicy(o)) }

// OnDropped receives every accepted task that will never run — queued when
// the pool stopped with [Cancel] or [DropQueued], ran out of stop budget,
// or failed — so that the app can persist or hand it elsewhere; not a task
// whose submitter's context ended while it was queued, which its submitter
// no longer wants (it is told that context's cause), unless the stop ended
// it: a group's context ends with [ErrClosed] when the stop drops or
// cancels one of its tasks, and its other tasks are dropped. ctx is the
// context the task was submitted with (context.Background for TryGo), so
// that values its submitter attached to it — a message ID, a trace —
// identify the task. Its submitter is told first: [Pool.Do] and
// [Future.Wait] return [ErrClosed], [Pool.GoReport] reports NotRun, and
// tasks of [Pool.Go] reach the [ErrorHandler]; running the task in f does
// not change what the submitter was told. R must be the pool's task
// parameter; a worker or the stop waits for f, which runs on a goroutine
// of its own and must be safe for concurrent use. A panic or a
// runtime.Goexit in f is logged. A pool has one: a second
// OnDropped fails fx.New (two could each run the task).
func OnDropped[R any](f func(ctx context.Context, task func(context.Context, R) error)) Option {
	return droppedOption[R]{f}
}

type droppedOption[R any] struct {
	f func(context.Context, func(context.Context, R) error)
}

func (o droppedOption[R]) apply(c *config) error {
	if o.f == nil {
		return fmt.Errorf("nil func")
	}
	if c.onDropped != nil {
		return fmt.Errorf("given twice: a pool has one OnDropped, which may run a task")
	}
	c.onDropped = o.f
	return nil
}

func (o droppedOption[R]) String() string {
	return fmt.Sprintf("workerpool.OnDropped[%v](...)", reflect.TypeFor[R]())
}

// WithClock replaces the clock that times worker age and restart backoff:
// a test point, so that tests control time instead of sleeping.
func WithClock(c Clock) Option { return clockOption{c} }

type clockOption struct{ c Clock }

func (o clockOption) apply(c *config) error {
	if o.c == nil {
		return fmt.Errorf("nil clock")
	}
	c.clock = o.c
	return nil
}

func (clockOption) String() string { return "workerpool.WithClock(...)" }

// Clock is the time source of a pool.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the call if it has not happened yet, and reports
	// whether it did so.
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Events hands every lifecycle [Event] of the pool to f, in addition to
// logging it: for metrics, tests and alerts. The pool waits for f where the
// event happens, but runs it on a goroutine of its own: a panic or a
// runtime.Goexit in f is logged and ends only f. f must be safe for
// concurrent use and quick, and must not wait for the pool's start or stop
// to end: PoolStopped is heard before any stop of the pool returns. Events
// may be given more than once — a test's recorder beside the app's
// metrics —: each f gets every event, in the order the options were given.
func Events(f func(Event)) Option { return eventsOption{f} }

type eventsOption struct{ f func(Event) }

func (o eventsOption) apply(c *config) error {
	if o.f == nil {
		return fmt.Errorf("nil func")
	}
	if prev := c.events; prev != nil {
		c.events = func(e Event) { prev(e); o.f(e) }
		return nil
	}
	c.events = o.f
	return nil
}

func (eventsOption) String() string { return "workerpool.Events(...)" }

// Elastic sizes the pool on demand: it opens min workers when it starts,
// opens more — up to max, each with its own resources — while tasks wait
// and no worker is idle, and closes a worker above min once it has been
// idle for idle. Opening happens on the new worker's goroutine, never on a
// submitter's. Elastic and [Workers] replace each other: the last given
// wins. 0 <= min <= max, max >= 1 and idle > 0.
func Elastic(min, max int, idle time.Duration) Option { return elasticOption{min, max, idle} }

type elasticOption struct {
	min, max int
	idle     time.Duration
}

func (o elasticOption) apply(c *config) error {
	if o.min < 0 || o.max < 1 || o.min > o.max || o.idle <= 0 {
		return fmt.Errorf("want 0 <= min <= max, max >= 1 and idle > 0")
	}
	c.workers, c.minWorkers, c.idle = o.max, o.min, o.idle
	return nil
}

func (o elasticOption) String() string {
	return fmt.Sprintf("workerpool.Elastic(%d, %d, %v)", o.min, o.max, o.idle)
}

// CheckIdle makes a worker that has waited for a task longer than d run
// its resources' health checks (see resources.Check) before the task. If a
// check fails, the worker rebuilds its resources first, as after
// resources.ErrBroken; the rebuild counts toward [MaxRestarts].
func CheckIdle(d time.Duration) Option { return checkIdleOption(d) }

type checkIdleOption time.Duration

func (o checkIdleOption) apply(c *config) error {
	if o <= 0 {
		return fmt.Errorf("must be positive")
	}
	c.checkIdle = time.Duration(o)
	return nil
}

func (o checkIdleOption) String() string {
	return fmt.Sprintf("workerpool.CheckIdle(%v)", time.Duration(o))
}

// OptionsFrom takes a value of type C — the app's config struct, read from
// flags or files — from the fx graph when the pool is built, and applies
// the options f makes of it after those given to [Provide]. An invalid one
// fails fx.New, naming the pool and the option. f may not return
// Resources, Named or OptionsFrom.
func OptionsFrom[C any](f func(C) []Option) Option { return optionsFromOption[C]{f} }

type optionsFromOption[C any] struct{ f func(C) []Option }

func (o optionsFromOption[C]) apply(c *config) error {
	if o.f == nil {
		return fmt.Errorf("nil func")
	}
	if c.configFrom.f != nil {
		return fmt.Errorf("given twice")
	}
	c.configFrom = configFrom{t: reflect.TypeFor[C](), f: func(v any) []Option { return o.f(v.(C)) }}
	return nil
}

func (o optionsFromOption[C]) String() string {
	return fmt.Sprintf("workerpool.OptionsFrom[%v](...)", reflect.TypeFor[C]())
}

// CloseTimeout bounds the context of every close that no stop bounds: a
// rebuild's, a recycle's, an elastic retirement's, the rollback of a start
// without a deadline, and that of a worker that comes back, from a task or
// an open, after a stop or start gave up on it. The default is 10s. A
// stop's closes are bounded by the stop's own budget instead (see
// [Provide]): a worker stuck in a cleanup when the stop gives up runs the
// cleanups behind it, once that one returns, with the stop's context,
// ended, as hooks.Stack.Close does; a cleanup that must write something
// should not be queued behind one that can hang.
func CloseTimeout(d time.Duration) Option { return closeTimeoutOption(d) }

type closeTimeoutOption time.Duration

func (o closeTimeoutOption) apply(c *config) error {
	if o <= 0 {
		return fmt.Errorf("must be positive")
	}
	c.closeTimeout = time.Duration(o)
	return nil
}

func (o closeTimeoutOption) String() string {
	return fmt.Sprintf("workerpool.CloseTimeout(%v)", time.Duration(o))
}

// LockOSThread locks each worker's goroutine to an OS thread of its own, from
// its first open to its last close, rebuilds included: for resources that
// must be opened, used and closed on one thread — cgo libraries with
// thread-local state, OpenGL or GPU contexts, SQLite builds without thread
// safety. The worker never unlocks: when it ends, its thread ends with it.
//
// A task that calls runtime.Goexit ends the worker's thread too: the worker
// goes on, on a fresh locked thread, after rebuilding its resources (the
// old ones are closed on the new thread, the old being gone). The worker
// holds the lock twice, so a task's one unbalanced runtime.UnlockOSThread
// leaves it locked; a task that unlocks it further is noticed on Linux once
// the worker has moved (it compares the thread before each task with the
// one its resources were opened on), and the worker rebuilds on a fresh
// locked thread. Each worker then holds
// a thread: see the benchmark table for the cost of the hand-off.
func LockOSThread() Option { return lockThreadOption{} }

type lockThreadOption struct{}

func (lockThreadOption) apply(c *config) error { c.lockThread = true; return nil }
func (lockThreadOption) String() string        { return "workerpool.LockOSThread()" }
