package workerpool_test

// Round 10: errors of opens and closes are never silent. With a *zap.Logger
// at info level (debug entries dropped), every failed open and every failed
// close — at the stop, in a rebuild, a recycle, a Resize retirement, an
// elastic retirement, a cleanup that panics or calls runtime.Goexit — is
// logged at warn or above with its error; and the Events hook gets the
// ResourceClosed / WorkerClosed with that Err.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type A10L struct{ w W }

func TestAttack10CloseErrorsNeverSilent(t *testing.T) {
	for _, where := range []string{"stop", "rebuild", "recycle", "resize", "elastic", "stop-goexit", "stop-panic", "open-rebuild"} {
		for _, level := range []zapcore.Level{zap.InfoLevel, zap.ErrorLevel} {
			t.Run(fmt.Sprintf("%s/%s", where, level), func(t *testing.T) {
				a10closeErr(t, where, level)
			})
		}
	}
}

func a10closeErr(t *testing.T, where string, level zapcore.Level) {
	marker := fmt.Sprintf("a10-marker-%s-%d", where, time.Now().UnixNano())
	evs := &a10Events{}
	core, logs := observer.New(level)
	var failing atomic.Bool // set when the close to watch is the failing one
	opts := []workerpool.Option{
		workerpool.Events(evs.add),
		workerpool.ErrorHandler(func(error) {}),
		workerpool.RestartBackoff(time.Hour, time.Hour),
		workerpool.Resources(resources.PerWorker(func(w W) (*A10L, func() error, error) {
			if where == "open-rebuild" && w.Generation > 0 {
				return nil, nil, errors.New(marker)
			}
			return &A10L{w}, func() error {
				if !failing.Load() {
					return nil
				}
				switch where {
				case "stop-goexit":
					runtime.Goexit()
				case "stop-panic":
					panic(marker)
				}
				return errors.New(marker)
			}, nil
		}, resources.Name("lres"))),
	}
	switch where {
	case "recycle":
		opts = append(opts, workerpool.Workers(1), workerpool.MaxTasksPerWorker(1))
	case "elastic":
		opts = append(opts, workerpool.Elastic(0, 1, 5*time.Millisecond))
	case "resize":
		opts = append(opts, workerpool.Workers(2))
	default:
		opts = append(opts, workerpool.Workers(1))
	}
	var p *workerpool.Pool[*A10L]
	app := a10app(t, &p, "a10log", []fx.Option{fx.Supply(zap.New(core))}, opts...)
	ctx, cancel := a10ctx(10 * time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var stopErr error
	switch where {
	case "stop", "stop-goexit", "stop-panic":
		failing.Store(true)
	case "rebuild", "open-rebuild":
		failing.Store(where == "rebuild")
		_ = p.Do(ctx, func(context.Context, *A10L) error { return resources.ErrBroken })
	case "recycle":
		failing.Store(true)
		_ = p.Do(ctx, func(context.Context, *A10L) error { return nil })
		atkPoll(t, "recycled", 10*time.Second, func() bool { return p.Stats().Recycles >= 1 })
		failing.Store(false)
	case "resize":
		failing.Store(true)
		if err := p.Resize(1); err != nil {
			t.Fatal(err)
		}
		atkPoll(t, "retired", 10*time.Second, func() bool { return p.Stats().Workers == 1 && p.Stats().Closing == 0 })
		time.Sleep(10 * time.Millisecond)
		failing.Store(false)
	case "elastic":
		failing.Store(true)
		_ = p.Do(ctx, func(context.Context, *A10L) error { return nil })
		atkPoll(t, "retired", 10*time.Second, func() bool { return p.Stats().Workers == 0 && p.Stats().Closing == 0 })
	}
	if where == "rebuild" || where == "open-rebuild" {
		atkPoll(t, "the rebuild's close / failed open", 10*time.Second, func() bool {
			for _, e := range evs.all() {
				switch e := e.(type) {
				case workerpool.WorkerClosed:
					if e.Err != nil {
						return true
					}
				case workerpool.WorkerOpened:
					if e.Err != nil {
						return true
					}
				}
			}
			return false
		})
		failing.Store(false)
	}
	stopErr = app.Stop(ctx)
	if strings.HasPrefix(where, "stop") && stopErr == nil {
		t.Errorf("stop: a failing cleanup, and app.Stop returned nil")
	}
	// the log
	found := false
	for _, e := range logs.All() {
		if e.Level < zap.WarnLevel {
			continue
		}
		s := fmt.Sprint(e.ContextMap())
		if strings.Contains(s, marker) || (where == "stop-goexit" && strings.Contains(strings.ToLower(s), "goexit")) {
			found = true
		}
	}
	if !found && level <= zap.WarnLevel {
		t.Errorf("%s: no log entry at warn or above with the close's error; entries:\n%v", where, logs.All())
	}
	if !found && level == zap.ErrorLevel && strings.HasPrefix(where, "stop") {
		// Only an error-level logger: a stop's close error still reaches it,
		// in PoolStopped (error level). Closes outside a stop are documented
		// at warn (WorkerClosed, ResourceClosed), below such a logger.
		t.Errorf("%s: an error-level logger never hears of the failed close/open; entries:\n%v", where, logs.All())
	}
	// the events
	sawR, sawW := false, false
	for _, e := range evs.all() {
		switch e := e.(type) {
		case workerpool.ResourceClosed:
			if e.Err != nil && e.Resource == "lres" {
				sawR = true
			}
		case workerpool.WorkerClosed:
			sawW = sawW || e.Err != nil
		case workerpool.WorkerOpened:
			if where == "open-rebuild" && e.Err != nil {
				sawW, sawR = true, true
			}
		}
	}
	if !sawR || !sawW {
		t.Errorf("%s: Events: ResourceClosed with Err %v, WorkerClosed with Err %v", where, sawR, sawW)
	}
}
