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
// A complete program, [examples/sqlconn] in the repository, compiled and
// run by its test: four workers, each with its own *sql.Conn on an
// app-scoped *sql.DB (openDB, a plain fx constructor, is in the example's
// db.go). A pool takes tasks only once its OnStart hook has run, so submit
// from an OnStart hook appended after the pool's, as ping does, or after
// app.Start returns. Start the app with app.Start rather than app.Run, which
// exits the process on a failed start before anything could report why.
//
//	// Deps is what every task receives.
//	type Deps struct {
//		fx.In
//		Conn *sql.Conn        // per worker: opened below, closed automatically
//		W    resources.Worker // who am I
//	}
//
//	func main() {
//		app := fx.New(
//			fxpool.Module,
//			fx.Provide(openDB), // app-scoped *sql.DB, plain fx
//			workerpool.Provide[Deps]("pinger",
//				workerpool.Workers(4),
//				workerpool.Resources(
//					resources.PerWorker(func(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
//						return db.Conn(ctx)
//					}),
//				),
//			),
//			fx.Invoke(ping), // after the pool, so ping's OnStart runs after the pool's
//		)
//		startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
//		defer cancel()
//		if err := app.Start(startCtx); err != nil {
//			log.Fatal(err) // app.Run would exit without saying why
//		}
//		<-app.Wait() // a signal, or ping's Shutdown
//		stopCtx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
//		defer cancel()
//		if err := app.Stop(stopCtx); err != nil {
//			log.Fatal(err)
//		}
//	}
//
//	// ping submits from an OnStart hook: a pool takes tasks once its own OnStart
//	// has run, and refuses them before with workerpool.ErrNotStarted.
//	func ping(lc fx.Lifecycle, p *workerpool.Pool[Deps], sd fx.Shutdowner) {
//		lc.Append(fx.StartHook(func(ctx context.Context) error {
//			err := p.Do(ctx, func(ctx context.Context, d Deps) error {
//				log.Printf("worker %d: ping", d.W.ID)
//				return d.Conn.PingContext(ctx)
//			})
//			if err != nil {
//				return err
//			}
//			return sd.Shutdown()
//		}))
//	}
//
// # Packages
//
//   - [github.com/fxpool/fxpool/resources] declares per-worker resources and
//     opens and closes a worker's scope.
//   - [github.com/fxpool/fxpool/workerpool] runs the workers: the queue, the
//     task APIs, start and stop.
//   - [github.com/fxpool/fxpool/hooks] is the LIFO cleanup stack underneath.
//
// [examples/sqlconn]: https://github.com/fxpool/fxpool/tree/main/examples/sqlconn
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
