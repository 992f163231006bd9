// Command sqlconn is the quick start of package fxpool's documentation
// (go doc github.com/fxpool/fxpool): four workers, each with its own
// *sql.Conn on an app-scoped *sql.DB (here an in-memory SQLite database,
// opened by db.go).
package main

import (
	"context"
	"database/sql"
	"log"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Deps is what every task receives.
type Deps struct {
	fx.In
	Conn *sql.Conn        // per worker: opened below, closed automatically
	W    resources.Worker // who am I
}

func main() {
	app := fx.New(
		fxpool.Module,
		fx.Provide(openDB), // app-scoped *sql.DB, plain fx
		workerpool.Provide[Deps]("pinger",
			workerpool.Workers(4),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
					return db.Conn(ctx)
				}),
			),
		),
		fx.Invoke(ping), // after the pool, so ping's OnStart runs after the pool's
	)
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		log.Fatal(err) // app.Run would exit without saying why
	}
	<-app.Wait() // a signal, or ping's Shutdown
	stopCtx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		log.Fatal(err)
	}
}

// ping submits from an OnStart hook: a pool takes tasks once its own OnStart
// has run, and refuses them before with workerpool.ErrNotStarted.
func ping(lc fx.Lifecycle, p *workerpool.Pool[Deps], sd fx.Shutdowner) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		err := p.Do(ctx, func(ctx context.Context, d Deps) error {
			log.Printf("worker %d: ping", d.W.ID)
			return d.Conn.PingContext(ctx)
		})
		if err != nil {
			return err
		}
		return sd.Shutdown()
	}))
}
