package workerpool_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

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
