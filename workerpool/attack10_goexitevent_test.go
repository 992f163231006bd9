package workerpool_test

// Round 10, FINDING: a constructor that calls runtime.Goexit (t.FailNow,
// testify's require) fails its open — the start fails naming the resource,
// the worker's WorkerOpened carries the error — but no ResourceOpened event
// with that Err reaches the Events hook, nor is "resource opened" logged
// with the error to a debug-level *zap.Logger; a constructor that returns
// an error or panics gets both. The docs: "ResourceOpened: one resource of a
// worker opened, or failed to", "Every event is logged ... and given to the
// Events hook".

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type A10G struct{}

func TestAttack10GoexitConstructorEvent(t *testing.T) {
	for _, where := range []string{"start", "rebuild"} {
		t.Run(where, func(t *testing.T) {
			evs := &a10Events{}
			core, logs := observer.New(zap.DebugLevel)
			var p *workerpool.Pool[*A10G]
			app := a10app(t, &p, "a10gx-"+where, []fx.Option{fx.Supply(zap.New(core))},
				workerpool.Workers(1),
				workerpool.Events(evs.add),
				workerpool.ErrorHandler(func(error) {}),
				workerpool.RestartBackoff(time.Hour, time.Hour),
				workerpool.Resources(resources.PerWorker(func(w W) *A10G {
					if where == "start" || w.Generation > 0 {
						runtime.Goexit()
					}
					return &A10G{}
				}, resources.Name("gx"))))
			ctx, cancel := a10ctx(10 * time.Second)
			defer cancel()
			err := app.Start(ctx)
			if where == "start" {
				if err == nil {
					t.Fatal("start succeeded")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Do(ctx, func(context.Context, *A10G) error { return resources.ErrBroken }); err == nil {
					t.Fatal("want ErrBroken")
				}
				atkPoll(t, "the rebuild's failed open", 10*time.Second, func() bool {
					for _, e := range evs.all() {
						if e, ok := e.(workerpool.WorkerOpened); ok && e.Err != nil {
							return true
						}
					}
					return false
				})
			}
			_ = app.Stop(ctx)
			sawW, sawR := false, false
			for _, e := range evs.all() {
				switch e := e.(type) {
				case workerpool.WorkerOpened:
					sawW = sawW || e.Err != nil
				case workerpool.ResourceOpened:
					sawR = sawR || (e.Resource == "gx" && e.Err != nil)
				}
			}
			if !sawW {
				t.Errorf("no WorkerOpened with Err")
			}
			if !sawR {
				t.Errorf("no ResourceOpened{Resource: gx, Err: ...} for a constructor that called runtime.Goexit; events: %v", evs.all())
			}
			logged := false
			for _, e := range logs.All() {
				if e.ContextMap()["resource"] == "gx" && e.ContextMap()["error"] != nil {
					logged = true
				}
			}
			if !logged {
				t.Errorf("the debug logger has no entry for resource gx with its error; entries: %v", logs.All())
			}
		})
	}
}
