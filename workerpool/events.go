package workerpool

import (
	"time"

	"github.com/fxpool/fxpool/resources"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// An Event is something that happened in a pool's life: one of the types
// below. Every event is logged — per resource at debug level, per pool at
// info, failures at warn or error — and given to the [Events] hook, if any.
type Event interface {
	// Level is the log level the event is logged at.
	Level() zapcore.Level
	event()
}

// PoolStarted: the pool's OnStart returned. Err is its error, if any.
type PoolStarted struct {
	Pool    string
	Workers int
	Took    time.Duration
	Err     error
}

// PoolStopped: the pool's OnStop returned. Err joins its teardown errors.
type PoolStopped struct {
	Pool string
	Took time.Duration
	Err  error
}

// PoolFailed: the pool passed MaxRestarts and stopped serving.
type PoolFailed struct {
	Pool string
	Err  error
}

// WorkerOpened: a worker opened, or did not open, a generation of its
// resources.
type WorkerOpened struct {
	Worker resources.Worker
	Took   time.Duration
	Err    error
}

// WorkerClosed: a worker closed a generation of its resources.
type WorkerClosed struct {
	Worker resources.Worker
	Took   time.Duration
	Err    error
}

// WorkerRebuilt: a worker replaced its resources with a fresh generation.
// Reason is "restart" (after a panic, a Goexit or ErrBroken, given as
// Cause), "failed check" (a health check after idling failed, given as
// Cause), "max tasks per worker" or "max worker age".
type WorkerRebuilt struct {
	Worker resources.Worker
	Reason string
	Cause  error
}

// ResourceOpened: one resource of a worker opened, or failed to.
type ResourceOpened struct {
	// Resource is the resource's name.
	Resource string
	// Worker is the worker it belongs to.
	Worker resources.Worker
	// Closed is false.
	Closed bool
	// Took is how long the constructor ran.
	Took time.Duration
	// Err is the open's error, if any.
	Err error
}

// ResourceClosed: one resource of a worker closed.
type ResourceClosed struct {
	// Resource is the resource's name.
	Resource string
	// Worker is the worker it belongs to.
	Worker resources.Worker
	// Closed is true.
	Closed bool
	// Took is how long the cleanup ran.
	Took time.Duration
	// Err is the close's error, if any.
	Err error
}

func (PoolStarted) event()    {}
func (PoolStopped) event()    {}
func (PoolFailed) event()     {}
func (WorkerOpened) event()   {}
func (WorkerClosed) event()   {}
func (WorkerRebuilt) event()  {}
func (ResourceOpened) event() {}
func (ResourceClosed) event() {}

func levelOf(err error, ok, failed zapcore.Level) zapcore.Level {
	if err != nil {
		return failed
	}
	return ok
}

// Level is info, or error if the start failed.
func (e PoolStarted) Level() zapcore.Level { return levelOf(e.Err, zap.InfoLevel, zap.ErrorLevel) }

// Level is info, or error if the stop had errors.
func (e PoolStopped) Level() zapcore.Level { return levelOf(e.Err, zap.InfoLevel, zap.ErrorLevel) }

// Level is error.
func (PoolFailed) Level() zapcore.Level { return zap.ErrorLevel }

// Level is debug, or warn if the open failed.
func (e WorkerOpened) Level() zapcore.Level { return levelOf(e.Err, zap.DebugLevel, zap.WarnLevel) }

// Level is debug, or warn if the close had errors.
func (e WorkerClosed) Level() zapcore.Level { return levelOf(e.Err, zap.DebugLevel, zap.WarnLevel) }

// Level is debug for a recycle, info for a restart (it has a Cause).
func (e WorkerRebuilt) Level() zapcore.Level { return levelOf(e.Cause, zap.DebugLevel, zap.InfoLevel) }

// Level is debug, or warn if the open failed.
func (e ResourceOpened) Level() zapcore.Level { return levelOf(e.Err, zap.DebugLevel, zap.WarnLevel) }

// Level is debug, or warn if the close failed.
func (e ResourceClosed) Level() zapcore.Level { return levelOf(e.Err, zap.DebugLevel, zap.WarnLevel) }

// hears reports whether an event of level lvl would be logged or handed
// to Events: the events of every worker's open and close are made only
// then, for a pool of many workers starts and stops without them.
func (p *Pool[R]) hears(lvl zapcore.Level) bool {
	return p.cfg.events != nil || p.log.Level().Enabled(lvl)
}

// record logs an event and hands it to the hook.
func (p *Pool[R]) record(e Event) {
	// Level first: Check's frame would grow the stack of a worker that
	// opens, for events that the logger drops.
	if lvl := e.Level(); p.log.Level().Enabled(lvl) {
		if ce := p.log.Check(lvl, message(e)); ce != nil {
			ce.Write(fields(e)...)
		}
	}
	if f := p.cfg.events; f != nil {
		p.guardAlone("Events", func() { f(e) })
	}
}

func message(e Event) string {
	switch e := e.(type) {
	case PoolStarted:
		if e.Err != nil {
			return "pool did not start"
		}
		return "pool started"
	case PoolStopped:
		if e.Err != nil {
			return "pool stopped with errors"
		}
		return "pool stopped"
	case PoolFailed:
		return "pool failed; stopping the app"
	case WorkerOpened:
		if e.Err != nil {
			return "worker did not open"
		}
		return "worker opened"
	case WorkerClosed:
		return "worker closed"
	case WorkerRebuilt:
		return "worker rebuilt"
	case ResourceOpened:
		return "resource opened"
	case ResourceClosed:
		return "resource closed"
	}
	return "event"
}

func fields(e Event) []zap.Field {
	worker := func(w resources.Worker) []zap.Field {
		return []zap.Field{zap.Int("worker", w.ID), zap.Int("generation", w.Generation)}
	}
	switch e := e.(type) {
	case PoolStarted:
		return []zap.Field{zap.Int("workers", e.Workers), zap.Duration("took", e.Took), zap.Error(e.Err)}
	case PoolStopped:
		return []zap.Field{zap.Duration("took", e.Took), zap.Error(e.Err)}
	case PoolFailed:
		return []zap.Field{zap.Error(e.Err)}
	case WorkerOpened:
		return append(worker(e.Worker), zap.Duration("took", e.Took), zap.Error(e.Err))
	case WorkerClosed:
		return append(worker(e.Worker), zap.Duration("took", e.Took), zap.Error(e.Err))
	case WorkerRebuilt:
		return append(worker(e.Worker), zap.String("reason", e.Reason), zap.NamedError("cause", e.Cause))
	case ResourceOpened:
		return append(worker(e.Worker), zap.String("resource", e.Resource), zap.Duration("took", e.Took), zap.Error(e.Err))
	case ResourceClosed:
		return append(worker(e.Worker), zap.String("resource", e.Resource), zap.Duration("took", e.Took), zap.Error(e.Err))
	}
	return nil
}
