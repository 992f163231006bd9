package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestEventsAndLogs(t *testing.T) {
	var (
		mu     sync.Mutex
		events []string
		pool   *workerpool.Pool[*Conn]
	)
	core, logs := observer.New(zap.DebugLevel)
	app := fxtest.New(t,
		fx.Supply(zap.New(core)),
		workerpool.Provide[*Conn]("observed",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Conn, func(), error) {
				return &Conn{gen: w.Generation}, func() {}, nil
			}, resources.Name("conn"))),
			workerpool.Events(func(e workerpool.Event) {
				var s string
				switch e := e.(type) {
				case workerpool.PoolStarted:
					s = fmt.Sprintf("pool started %s %d %v", e.Pool, e.Workers, e.Err)
				case workerpool.PoolStopped:
					s = fmt.Sprintf("pool stopped %s %v", e.Pool, e.Err)
				case workerpool.WorkerOpened:
					s = fmt.Sprintf("worker opened %d/%d", e.Worker.ID, e.Worker.Generation)
				case workerpool.WorkerClosed:
					s = fmt.Sprintf("worker closed %d/%d", e.Worker.ID, e.Worker.Generation)
				case workerpool.WorkerRebuilt:
					s = fmt.Sprintf("worker rebuilt %d/%d %s", e.Worker.ID, e.Worker.Generation, e.Reason)
				case workerpool.ResourceOpened:
					s = fmt.Sprintf("resource opened %s %d/%d", e.Resource, e.Worker.ID, e.Worker.Generation)
				case workerpool.ResourceClosed:
					s = fmt.Sprintf("resource closed %s %d/%d", e.Resource, e.Worker.ID, e.Worker.Generation)
				default:
					s = fmt.Sprintf("%T", e)
				}
				mu.Lock()
				events = append(events, s)
				mu.Unlock()
			}),
		),
		fx.Populate(&pool),
	)
	app.RequireStart()
	if err := pool.Do(t.Context(), func(context.Context, *Conn) error { return resources.ErrBroken }); err == nil {
		t.Fatal("Do() = nil, want ErrBroken")
	}
	app.RequireStop()

	want := []string{
		"resource opened conn 0/0",
		"worker opened 0/0",
		"pool started observed 1 <nil>",
		// ErrBroken: close generation 0, open generation 1
		"resource closed conn 0/0",
		"worker closed 0/0",
		"resource opened conn 0/1",
		"worker opened 0/1",
		"worker rebuilt 0/1 restart",
		"resource closed conn 0/1",
		"worker closed 0/1",
		"pool stopped observed <nil>",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(events, want) {
		t.Errorf("events:\n%v\nwant:\n%v", events, want)
	}

	started := logs.FilterMessage("pool started").All()
	if len(started) != 1 || started[0].Level != zap.InfoLevel || started[0].ContextMap()["pool"] != "observed" {
		t.Errorf("pool started logs %v, want one info entry with the pool's name", started)
	}
	opened := logs.FilterMessage("resource opened").All()
	if len(opened) != 2 || opened[0].Level != zap.DebugLevel || opened[0].ContextMap()["resource"] != "conn" ||
		opened[0].ContextMap()["worker"] != int64(0) {
		t.Errorf("resource opened logs %v, want two debug entries with the resource and the worker", opened)
	}
	if n := logs.FilterMessage("worker rebuilt").FilterField(zap.String("reason", "restart")).Len(); n != 1 {
		t.Errorf("%d worker rebuilt logs, want 1", n)
	}
}

// TestEventsSayHowLongOpensAndClosesTook: a worker's open and close are
// timed whenever their events may be heard — by Events, or by a logger
// that hears warnings (a failed open or close) — and a pool that nobody
// hears does not read the clock for them.
func TestEventsSayHowLongOpensAndClosesTook(t *testing.T) {
	const pause = 5 * time.Millisecond
	slow := func(fail bool) workerpool.Option {
		return workerpool.Resources(resources.PerWorker(func(resources.Worker) (*Conn, func() error, error) {
			time.Sleep(pause)
			return &Conn{}, func() error {
				time.Sleep(pause)
				if fail {
					return errors.New("close failed")
				}
				return nil
			}, nil
		}, resources.Name("conn")))
	}
	t.Run("events", func(t *testing.T) {
		var mu sync.Mutex
		var opened, closed []time.Duration
		app := fxtest.New(t, workerpool.Provide[*Conn]("timed", workerpool.Workers(2), slow(false),
			workerpool.Events(func(e workerpool.Event) {
				mu.Lock()
				defer mu.Unlock()
				switch e := e.(type) {
				case workerpool.WorkerOpened:
					opened = append(opened, e.Took)
				case workerpool.WorkerClosed:
					closed = append(closed, e.Took)
				}
			})), fx.Invoke(func(*workerpool.Pool[*Conn]) {}))
		app.RequireStart().RequireStop()
		mu.Lock()
		defer mu.Unlock()
		for what, tooks := range map[string][]time.Duration{"WorkerOpened": opened, "WorkerClosed": closed} {
			if len(tooks) != 2 {
				t.Errorf("%d %s events, want 2", len(tooks), what)
			}
			for _, took := range tooks {
				if took < pause || took > time.Hour {
					t.Errorf("%s.Took = %v, want at least %v (the constructor's or cleanup's pause)", what, took, pause)
				}
			}
		}
	})
	t.Run("warnings", func(t *testing.T) {
		core, logs := observer.New(zap.WarnLevel)
		app := fxtest.New(t, fx.Supply(zap.New(core)),
			workerpool.Provide[*Conn]("timed", workerpool.Workers(1), slow(true)),
			fx.Invoke(func(*workerpool.Pool[*Conn]) {}))
		app.RequireStart()
		if err := app.Stop(t.Context()); err == nil {
			t.Fatal("Stop() = nil, want the cleanup's error")
		}
		entries := logs.FilterField(zap.String("pool", "timed")).FilterFieldKey("took").All()
		found := false
		for _, e := range entries {
			if took, ok := e.ContextMap()["took"].(time.Duration); ok && e.Message == "worker closed" {
				found = true
				if took < pause || took > time.Hour {
					t.Errorf("%q: took = %v, want at least %v", e.Message, took, pause)
				}
			}
		}
		if !found {
			t.Errorf("no warning of the failed close with its duration; logged: %v", entries)
		}

		// And a failed open.
		core, logs = observer.New(zap.WarnLevel)
		app = fxtest.New(t, fx.Supply(zap.New(core)),
			workerpool.Provide[*Conn]("timed", workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(func(resources.Worker) (*Conn, error) {
					time.Sleep(pause)
					return nil, errors.New("open failed")
				}))),
			fx.Invoke(func(*workerpool.Pool[*Conn]) {}))
		if err := app.Start(t.Context()); err == nil {
			t.Fatal("Start() = nil, want the constructor's error")
		}
		entries = logs.FilterMessage("worker did not open").All()
		if len(entries) != 1 {
			t.Fatalf("%d warnings of the failed open, want 1; logged: %v", len(entries), logs.All())
		}
		if took, _ := entries[0].ContextMap()["took"].(time.Duration); took < pause || took > time.Hour {
			t.Errorf("the failed open's took = %v, want at least %v", took, pause)
		}
	})
}
