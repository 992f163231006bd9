package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
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
	pool      string      // the pool's name
	create    bool        // create the database if it is missing
	resources []perWorker // each worker's resources, in dependency order
	supply    []any       // app-scoped values for the constructors
	test      *testSeams  // the tests' hooks into the app; nil in a run
}

// perWorker is a per-worker resource: its name in errors and its
// constructor, for resources.PerWorker.
type perWorker struct {
	name        string
	constructor any
}

// testSeams are the hooks through which the in-process tests watch the app
// and inject faults into it (fxpooltest); a run has none. They are set on
// the options by the tests only: no flag reaches them.
type testSeams struct {
	newApp   func(...fx.Option) *fx.App   // makes the app instead of fx.New
	pool     []workerpool.Option          // added to the pool's options
	wrap     func(name string, c any) any // wraps each per-worker constructor
	dbClosed func()                       // called once the database has closed
}

// session is one run of a command that hashes files: the signal handling,
// the database and the started fx app with its pool of R. Every such
// command starts one with startSession, hands it tasks with submit and ends
// it with stop.
//
// The session halts at the first SIGINT or SIGTERM, or when a task fails
// (the error of a database write): the pool is stopped at once with
// workerpool.DropQueued, so that the tasks in flight finish and commit
// while no queued one starts; each of those is reported NotRun and counted
// in notRun. Otherwise stop waits for every task submitted, then stops the
// app.
type session[R any] struct {
	// sig ends at the first SIGINT or SIGTERM; a second one ends the
	// process at once.
	sig         context.Context
	stopSignals context.CancelFunc
	signaled    bool // set by stop

	// halt ends with sig or with fail; the pool's stop then begins, in a
	// goroutine of context.AfterFunc that closes halted when it returns.
	halt       context.Context
	fail       context.CancelCauseFunc
	stopOnHalt func() bool
	halted     chan struct{}

	// pending is the number of submitted tasks not yet reported, plus one
	// until stop: whoever takes it to zero closes idle.
	pending atomic.Int64
	idle    chan struct{}
	notRun  atomic.Int64                    // tasks the pool never ran
	report  func(workerpool.Outcome, error) // s.outcome, made once

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
	test := cfg.test
	if test == nil {
		test = &testSeams{}
	}
	s := &session[R]{dbFile: dbFile, idle: make(chan struct{}), halted: make(chan struct{})}
	s.pending.Store(1)
	s.report = s.outcome
	s.sig, s.stopSignals = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(s.sig, s.stopSignals)

	decls := make([]resources.Declaration, len(cfg.resources))
	for i, r := range cfg.resources {
		c := r.constructor
		if test.wrap != nil {
			c = test.wrap(r.name, c)
		}
		decls[i] = resources.PerWorker(c, resources.Name(r.name))
	}
	opts := []workerpool.Option{
		workerpool.Workers(o.workers),
		workerpool.QueueSize(queuePerWorker * o.workers),
		workerpool.Resources(decls...),
		// Every stop of fxsum's pool starts no queued task: a normal end
		// stops only once every task has been reported.
		workerpool.OnStop(workerpool.DropQueued),
	}
	opts = append(opts, test.pool...)
	newApp := fx.New
	if test.newApp != nil {
		newApp = test.newApp
	}
	s.app = newApp(
		fxpool.Module,
		fx.WithLogger(func() fxevent.Logger { return &fxevent.ZapLogger{Logger: log.Named("fx")} }),
		fx.Supply(log),
		fx.Supply(cfg.supply...),
		fx.Provide(func(lc fx.Lifecycle) *sql.DB {
			lc.Append(fx.StopHook(func() error {
				err := db.Close()
				if test.dbClosed != nil {
					test.dbClosed()
				}
				if err != nil {
					return fmt.Errorf("close database: %w", err)
				}
				return nil
			}))
			return db
		}),
		workerpool.Provide[R](cfg.pool, opts...),
		// The database first: its OnStop then runs after the pool's, also
		// for a pool whose workers do not use it.
		fx.Populate(&s.db, &s.pool),
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
	s.halt, s.fail = context.WithCancelCause(s.sig)
	s.stopOnHalt = context.AfterFunc(s.halt, func() {
		defer close(s.halted)
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		// Its result is also the app stop's: the pool's OnStop waits for
		// this stop and returns it.
		_ = s.pool.Stop(stopCtx, workerpool.DropQueued)
	})
	return s, nil
}

// submit hands task to the pool. It blocks while the queue is full, and
// returns workerpool.ErrClosed once the session has halted. The task's
// context is the pool's: it is not cancelled by the halt, only by the
// stop's budget.
func (s *session[R]) submit(task func(context.Context, R) error) error {
	s.pending.Add(1)
	err := s.pool.GoReport(context.Background(), task, s.report)
	if err != nil {
		s.done()
	}
	return err
}

// outcome is the report of every task: a task that failed or panicked
// halts the session, one that never ran is counted.
func (s *session[R]) outcome(o workerpool.Outcome, err error) {
	switch o {
	case workerpool.NotRun:
		s.notRun.Add(1)
	case workerpool.Failed, workerpool.Panicked:
		s.fail(err)
	}
	s.done()
}

func (s *session[R]) done() {
	if s.pending.Add(-1) == 0 {
		close(s.idle)
	}
}

// stop ends the session: it waits until every task submitted has been
// reported, or the session halts, then stops the app: the pool (with
// DropQueued: no queued task starts), its workers commit and close their
// resources, then the database is closed. It must be called once, after the
// last submit; it waits at most stopTimeout, also after ctx has ended.
func (s *session[R]) stop(ctx context.Context) error {
	s.done() // the submitter's own count
	select {
	case <-s.idle:
	case <-s.halt.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	err := s.app.Stop(stopCtx)
	if !s.stopOnHalt() {
		<-s.halted // its stop has returned with the app's
	}
	s.signaled = s.sig.Err() != nil && ctx.Err() == nil
	s.stopSignals()
	return err
}

// interrupted reports, after stop, whether a signal, not ctx, ended the
// session.
func (s *session[R]) interrupted() bool { return s.signaled }

// failure returns, after stop, the error of the task that halted the
// session, or nil.
func (s *session[R]) failure() error {
	if err := context.Cause(s.halt); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// notRunError reports the tasks a session submitted that the pool never
// ran, when neither a signal nor a failure, which say so themselves, was
// the cause: those files are not in the index.
type notRunError struct{ n int64 }

func (e *notRunError) Error() string {
	return fmt.Sprintf("%d files were not hashed: the pool stopped before it ran them", e.n)
}
