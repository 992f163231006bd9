package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Time limits of the app's start and stop. Starting opens one database
// connection per worker; stopping waits for the files in flight and the
// last commits.
const (
	startTimeout = time.Minute
	stopTimeout  = 10 * time.Minute
)

// queuePerWorker is the pool's queue per worker: room for the walker to
// list the next directory, or read its rows from the index, while the
// workers hash the files it has found so far.
const queuePerWorker = 128

// appConfig is what a command puts into the shared app.
type appConfig struct {
	pool      string                  // the pool's name
	create    bool                    // create the database if it is missing
	resources []resources.Declaration // each worker's resources
	onError   func(error)             // gets the errors of tasks, if not nil
	supply    []any                   // app-scoped values for the constructors
}

// session is one run of a command that hashes files: the signal handling,
// the database and the started fx app with its pool of R. Every such
// command starts one with startSession and ends it with stop.
type session[R any] struct {
	// sig ends at the first SIGINT or SIGTERM; a second one ends the
	// process at once.
	sig         context.Context
	stopSignals context.CancelFunc
	signaled    bool // set by stop

	dbFile string // the database, absolute
	db     *sql.DB
	pool   *workerpool.Pool[R]
	app    *fx.App
}

// startSession opens the database, builds the app (fxpool.Module, the
// app-scoped *sql.DB, the pool) and starts it: every worker has opened its
// resources when it returns. The database is opened before the app is
// built, so that a database problem is one line that names the file (fx
// would bury it in its dependency report); the app owns it from then on and
// closes it in its OnStop, after the pool has stopped.
func startSession[R any](ctx context.Context, o *options, log *zap.Logger, cfg appConfig) (*session[R], error) {
	dbFile, err := filepath.Abs(o.db)
	if err != nil {
		return nil, usagef("--db %s: %w", o.db, err)
	}
	db, err := openDB(ctx, dbFile, cfg.create)
	if err != nil {
		return nil, err
	}
	s := &session[R]{dbFile: dbFile}
	s.sig, s.stopSignals = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(s.sig, s.stopSignals)

	opts := []workerpool.Option{
		workerpool.Workers(o.workers),
		workerpool.QueueSize(queuePerWorker * o.workers),
		workerpool.Resources(cfg.resources...),
	}
	if cfg.onError != nil {
		opts = append(opts, workerpool.ErrorHandler(cfg.onError))
	}
	s.app = fx.New(
		fxpool.Module,
		fx.WithLogger(func() fxevent.Logger { return &fxevent.ZapLogger{Logger: log.Named("fx")} }),
		fx.Supply(log),
		fx.Supply(cfg.supply...),
		fx.Provide(func(lc fx.Lifecycle) *sql.DB {
			lc.Append(fx.StopHook(func() error {
				if err := db.Close(); err != nil {
					return fmt.Errorf("close database: %w", err)
				}
				return nil
			}))
			return db
		}),
		workerpool.Provide[R](cfg.pool, opts...),
		fx.Populate(&s.pool, &s.db),
	)
	if err := s.app.Err(); err != nil {
		s.stopSignals()
		_ = db.Close()
		return nil, fmt.Errorf("build app: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := s.app.Start(startCtx); err != nil {
		s.stopSignals()
		return nil, fmt.Errorf("start: %w", err)
	}
	return s, nil
}

// stop stops the app: the pool runs the tasks it has, its workers commit and
// close their resources, then the database is closed. It waits at most
// stopTimeout, also after ctx has ended.
func (s *session[R]) stop(ctx context.Context) error {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	err := s.app.Stop(stopCtx)
	s.signaled = s.sig.Err() != nil && ctx.Err() == nil
	s.stopSignals()
	return err
}

// interrupted reports, after stop, whether a signal, not ctx, ended the
// session.
func (s *session[R]) interrupted() bool { return s.signaled }
