package workerpool_test

// Round 10: helpers shared by the attack10 tests.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a10Events struct {
	mu sync.Mutex
	ev []workerpool.Event
}

func (e *a10Events) add(ev workerpool.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }
func (e *a10Events) all() []workerpool.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]workerpool.Event(nil), e.ev...)
}

// a10eventCounts counts, by resource or worker and by generation, the
// opens without Err and the closes among evs.
func a10eventCounts(evs []workerpool.Event) (resOpened, resClosed, wOpened, wClosed map[string]int) {
	resOpened, resClosed, wOpened, wClosed = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, e := range evs {
		switch e := e.(type) {
		case workerpool.ResourceOpened:
			if e.Err == nil {
				resOpened[fmt.Sprintf("%s/%d/%d", e.Resource, e.Worker.ID, e.Worker.Generation)]++
			}
		case workerpool.ResourceClosed:
			resClosed[fmt.Sprintf("%s/%d/%d", e.Resource, e.Worker.ID, e.Worker.Generation)]++
		case workerpool.WorkerOpened:
			if e.Err == nil {
				wOpened[fmt.Sprintf("%d/%d", e.Worker.ID, e.Worker.Generation)]++
			}
		case workerpool.WorkerClosed:
			wClosed[fmt.Sprintf("%d/%d", e.Worker.ID, e.Worker.Generation)]++
		}
	}
	return resOpened, resClosed, wOpened, wClosed
}

// a10app builds an app with one pool of R and populates p.
func a10app[R any](t *testing.T, p **workerpool.Pool[R], name string, extra []fx.Option, opts ...workerpool.Option) *fx.App {
	t.Helper()
	o := append([]fx.Option{fx.NopLogger, workerpool.Provide[R](name, opts...), fx.Populate(p)}, extra...)
	app := fx.New(o...)
	if err := app.Err(); err != nil {
		t.Fatalf("fx.New: %v", err)
	}
	return app
}

func a10ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// a10within runs f and fails the test if it has not returned within d.
func a10within(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("hang: %s not within %v\n%s", what, d, buf[:n])
	}
}
