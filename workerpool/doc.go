// Package workerpool runs tasks on a pool of workers, each of which owns
// its own resources, opened when the pool starts and closed when it stops.
//
// # Declaring a pool
//
// [Provide] declares a pool in an fx app and provides *[Pool][R]. R is what
// every task receives: an fx.In struct of per-worker resources (declared
// with [Resources] and package resources) and app-scoped values, or a
// single type. Options are named values such as [Workers], [QueueSize] and
// [MaxTasksPerWorker]; an invalid one makes fx.New fail, naming it.
//
// # Who owns what
//
// The pool owns its workers: one goroutine each, started by the pool's
// OnStart hook (or, for an [Elastic] pool, by its grower) and ended by its
// OnStop hook, never later. Each worker owns its resources: it opens them
// (in dependency order) before its first task, rebuilds them after a
// panic, a runtime.Goexit, a task error wrapping resources.ErrBroken, or
// when [MaxTasksPerWorker] or [MaxWorkerAge] says so, and closes them (in
// reverse order) when the pool stops. The app owns app-scoped resources,
// which fx stops after the pool, since the pool was built from them.
//
// # Submitting
//
// [Pool.Go] queues a task and returns; [Pool.TryGo] never blocks;
// [Pool.Do] waits for the result; [Submit] returns a [Future]; [Map] runs a
// sequence through the pool and yields the results in order;
// [Pool.GoReport] tells a feeder each task's [Outcome]; [Pool.Group] runs a
// set of tasks with errgroup's shape: the first failure cancels the
// others. Every accepted task either runs, or its submitter is told, with
// [ErrClosed], that it did not: Do and Future.Wait return it, GoReport
// reports [NotRun], tasks of Go reach the [ErrorHandler], and [OnDropped]
// sees each.
//
// A task's context carries the values of the context it was submitted
// with. For Do, Submit, Map, GoReport and groups it also ends when that
// context ends, with its cause, and such a task whose context ended before
// a worker took it does not run; for Go it does not end with it, as with
// [context.WithoutCancel]. Every task's context ends when the pool's stop
// says so, with cause [ErrClosed].
//
// # States
//
// A pool's state changes in one place, under one lock:
//
//	new ─start─▶ starting ─all open─▶ serving ─stop─▶ stopping ─feeders done─▶ draining ─▶ stopped
//	 │              │                    │               │                         ▲
//	 │              │                    └─MaxRestarts─▶ failed ───stop─────────────┘
//	 │              └─an open failed, the budget ran out or a stop came: rolled back ─▶ stopped
//	 └─stop before start ─▶ stopped
//
// Serving and stopping take tasks (stopping lets feeders hand in their
// last ones; see [Pool.AddFeeder]). Before the start, submitters get
// [ErrNotStarted]; from failed, draining or stopped, [ErrClosed]. A failed
// pool keeps its workers' resources until it is stopped; its stop still
// stops its feeders first. A pool starts
// once: a second start after a stop fails with [ErrClosed]. A stop while
// another is under way waits for it and returns its result. A [Pool.Stop]
// while the pool starts makes the start give up: it rolls back and fails
// with [ErrClosed], and the stop returns once the rollback is over.
//
// # Starting
//
// The start's budget is the time left to its context's deadline when
// OnStart begins. Workers open in parallel ([StartConcurrency] at a time)
// during the first two thirds of it. If an open fails, or that share runs
// out, the start rolls back: every worker that opened closes, in reverse
// order, and OnStart returns by nineteen twentieths of the budget, before
// fx gives up on it (fx's App.Start returns at its deadline without waiting
// for the hook, and App.Run then exits the process). Only a constructor
// that ignores its context can still be running then; its worker closes
// what it opened as soon as it returns. The error names the pool, each
// worker that failed and why, or the workers still opening and the
// resource each is stuck in.
//
// # Stopping
//
// The pool's OnStop hook stops it with its [StopPolicy]; [Pool.Stop] stops
// it earlier, on demand, with any policy. The stop's budget is the time
// left to its context's deadline when the stop begins. Feeders registered
// with [Pool.AddFeeder] stop feeding first, within the first two fifths of
// the budget, while the pool still takes their last tasks; then the pool
// refuses new tasks. Under [Drain], the default, queued tasks still start
// during the first two fifths of the budget; under [DropQueued] none does,
// but running tasks may finish until then. At two fifths, or at once under
// [Cancel], the tasks still queued are reported as not run and the context
// of running tasks is cancelled, with cause [ErrClosed]. Each worker closes its resources as soon as it is free:
// every cleanup gets a context whose deadline is nine tenths of the
// budget, so closing (a flush, a commit) is never starved by draining. The
// last tenth is left to the hooks that stop after the pool, such as those
// of the app-scoped resources its workers use. A task or cleanup that
// ignores its context does not hold the stop past nine tenths: the stop
// returns an error naming the worker and what it is stuck in, and that
// worker closes on its own when it comes back. A stop without a deadline
// waits for everything.
//
// fx skips every remaining OnStop once the stop budget is gone: a hook that
// stops before the pool and takes the whole budget (an HTTP server's
// graceful Shutdown) would leave the pool running and its resources open.
// [StopGuard] closes that gap: see its documentation.
//
// Cleanups that no stop bounds — a rebuild's, a recycle's, an elastic
// retirement's — get a context that ends after [CloseTimeout]. A
// constructor's context ends when its open ends: for the first workers,
// when the start returns, whether it succeeded or not; for a rebuild, when
// the pool begins to drop tasks. A constructor that starts background work
// must give it a context of its own and stop it in its cleanup.
//
// # Goroutines
//
// Every goroutine the pool starts has an owner that ends it and waits for
// it:
//
//	goroutine   started by                      ended by                         waited for by
//	worker      launch (start, grower, Resize);  a pill (stop, rollback), an      stop and rollback, through
//	            spawn for the successor of a    elastic or Resize retirement,    the worker's exited channel
//	            worker whose task called        the stop giving up (abandon),
//	            Goexit, and for the fresh       or a failed first open; the
//	            goroutine a worker serves on    one that opened ends when it
//	            once it opened                  hands over to the fresh one
//	grower      a successful start (Elastic)    the stop (stopGrowing)           the stop
//	guard       [StopGuard]'s hook, as a timer  the stop it runs, by the app's   the pool's OnStop, if fx
//	            at half of the app's stop       stop deadline                    reaches it
//	feeder      a stop, one feeder's stop at a  that stop returning              the stop, until two fifths
//	stop        time (see [Pool.AddFeeder])                                      of its budget
//
// A feeder's own goroutines are the feeder's: the consumer of the module
// github.com/fxpool/fxpool/jetstream, for one, starts a pull loop, a
// submitter and a heartbeat goroutine, which its package documentation
// lists, and registers the stop that ends them with AddFeeder.
//
// Timers made with the pool's [Clock] (MaxWorkerAge, restart backoff,
// elastic idling) run no code but a flag or a channel close; the stop's
// drain timer marks the queue dropped and cancels the running tasks'
// contexts. Their owners stop them.
//
// # Observing
//
// [Pool.Stats] counts workers and tasks; every lifecycle [Event] is logged
// to the app's *zap.Logger or, if it has none, errors only, to standard
// error; and given to the [Events] hook. A panic in a user's callback
// (ErrorHandler, OnDropped, Events) is logged, never a crash.
package workerpool
