// Package fxpool gives every worker of a pool its own resources — a
// database connection holding a transaction, a SQLite or cgo handle, a
// client stream, a scratch buffer — opened when the worker starts and
// closed when it stops: in dependency order, exactly once, even when an
// open fails halfway, a task panics or the app is told to stop.
//
// Resources and pools are fx providers. A pool's OnStart hook opens every
// worker's resources in parallel; its OnStop hook closes them in reverse
// dependency order, before the app-scoped resources they use.
//
// # Quick start
//
//	type Deps struct {
//		fx.In
//		Conn *sql.Conn        // per worker: opened below, closed automatically
//		W    resources.Worker // who am I
//	}
//
//	fx.New(
//		fxpool.Module,
//		fx.Provide(openDB), // app-scoped *sql.DB, plain fx
//		workerpool.Provide[Deps]("indexer",
//			workerpool.Workers(8),
//			workerpool.Resources(
//				resources.PerWorker(func(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
//					return db.Conn(ctx)
//				}),
//			),
//		),
//		fx.Invoke(func(p *workerpool.Pool[Deps]) { /* submit work with p.Go, p.Do, workerpool.Submit */ }),
//	).Run()
//
// # Packages
//
//   - [github.com/fxpool/fxpool/resources] declares per-worker resources and
//     opens and closes a worker's scope.
//   - [github.com/fxpool/fxpool/workerpool] runs the workers: the queue, the
//     task APIs, start and stop.
//   - [github.com/fxpool/fxpool/hooks] is the LIFO cleanup stack underneath.
package fxpool

import (
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Module provides a [*workerpool.Registry] with which every pool of the app
// registers itself, so that health checks and metrics can list every pool
// and its [workerpool.Stats]. Pools work without it.
var Module = fx.Module("fxpool",
	fx.Provide(workerpool.NewRegistry),
)
