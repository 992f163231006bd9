package workerpool_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type W = resources.Worker

// atkStart starts an fx app with one pool "atk" and stops it at cleanup
// (unless already stopped); returns the pool and the app.
func atkStart[R any](t *testing.T, name string, opts ...workerpool.Option) (*workerpool.Pool[R], *fx.App) {
	t.Helper()
	var p *workerpool.Pool[R]
	app := fx.New(fx.NopLogger, workerpool.Provide[R](name, opts...), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatalf("fx.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	})
	return p, app
}

// atkWait fails the test if ch is not closed/ready within d.
func atkWait(t *testing.T, what string, d time.Duration, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("hang: %s not within %v", what, d)
	}
}

func atkPoll(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// atkBlock occupies n workers until release.
func atkBlock[R any](t *testing.T, p *workerpool.Pool[R], n int) (release func()) {
	t.Helper()
	var started sync.WaitGroup
	ch := make(chan struct{})
	started.Add(n)
	for range n {
		if err := p.Go(context.Background(), func(context.Context, R) error {
			started.Done()
			<-ch
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	atkWait(t, "blockers start", 5*time.Second, done)
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

// ledger records opens and closes of resources, per worker-generation.
type ledger struct {
	mu     sync.Mutex
	events []string
	open   map[string]int
	closed map[string]int
}

func newLedger() *ledger { return &ledger{open: map[string]int{}, closed: map[string]int{}} }

func (l *ledger) add(kind, res string, w W) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := fmt.Sprintf("%s/w%d/g%d", res, w.ID, w.Generation)
	l.events = append(l.events, kind+" "+key)
	if kind == "open" {
		l.open[key]++
	} else {
		l.closed[key]++
	}
}

// check: each opened closed exactly once; none closed unopened; per worker gen,
// B (depends on A) closes before A.
func (l *ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, n := range l.open {
		if n != 1 {
			t.Errorf("%s opened %d times", k, n)
		}
		if l.closed[k] != 1 {
			t.Errorf("%s opened but closed %d times", k, l.closed[k])
		}
	}
	for k, n := range l.closed {
		if l.open[k] == 0 {
			t.Errorf("%s closed %d times but never opened", k, n)
		}
	}
	// reverse order: for each "close A/x" there must be an earlier "close B/x" if B/x opened
	pos := map[string]int{}
	for i, e := range l.events {
		pos[e] = i
	}
	for k := range l.open {
		if strings.HasPrefix(k, "B/") {
			a := "A/" + strings.TrimPrefix(k, "B/")
			if pos["close "+k] > pos["close "+a] {
				t.Errorf("close order: %s closed after %s", k, a)
			}
		}
	}
}

func (l *ledger) counts() (opens, closes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.open {
		opens += n
	}
	for _, n := range l.closed {
		closes += n
	}
	return
}

type ResA struct{ w W }
type ResB struct {
	a *ResA
	w W
}

type AB struct {
	fx.In
	B *ResB
	W W
}

// abResources: per worker A then B (B depends on A), journalled.
func abResources(l *ledger) workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(w W) (*ResA, func(), error) {
			l.add("open", "A", w)
			return &ResA{w}, func() { l.add("close", "A", w) }, nil
		}),
		resources.PerWorker(func(a *ResA, w W) (*ResB, func(), error) {
			l.add("open", "B", w)
			return &ResB{a, w}, func() { l.add("close", "B", w) }, nil
		}),
	)
}

func newAtkApp[R any](t *testing.T, p **workerpool.Pool[R], name string, opts ...workerpool.Option) *fx.App {
	t.Helper()
	app := fx.New(fx.NopLogger, workerpool.Provide[R](name, opts...), fx.Populate(p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	return app
}
