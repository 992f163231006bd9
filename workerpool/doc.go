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
// OnStart hook and ended by its OnStop hook, never later. Each worker owns
// its resources: it opens them (in dependency order) before its first
// task, rebuilds them after a panic, a task error wrapping
// resources.ErrBroken, or when [MaxTasksPerWorker] or [MaxWorkerAge] says
// so, and closes them (in reverse order) when the pool stops. The app owns
// app-scoped resources, which fx stops after the pool, since the pool was
// built from them.
//
// # Submitting
//
// [Pool.Go] queues a task and returns; [Pool.TryGo] never blocks;
// [Pool.Do] waits for the result; [Submit] returns a [Future]; [Map] runs a
// sequence through the pool and yields the results in order. Every
// accepted task either runs, or its submitter is told, with [ErrClosed],
// that it did not: Do and Future.Wait return it, tasks of Go reach the
// [ErrorHandler], and [OnDropped] sees each.
//
// # Starting and stopping
//
// Start opens every worker's resources in parallel and returns when all are
// open; if any open fails or the start context ends, it closes, in reverse
// order, everything that did open before returning. Stop refuses new
// tasks, lets the queued ones run ([Drain], the default) or reports them
// as not run ([Cancel]), cancels the context of running tasks once half of
// its budget is gone, and closes every worker's resources within three
// quarters of it: the last quarter belongs to the hooks that stop after
// the pool. A task or cleanup that ignores its context does not hold Stop
// past its deadline: Stop returns an error naming the worker and what it
// is stuck in.
//
// # Observing
//
// [Pool.Stats] counts workers and tasks; every lifecycle [Event] is logged
// to the app's *zap.Logger, if it has one, and given to the [Events] hook.
package workerpool
