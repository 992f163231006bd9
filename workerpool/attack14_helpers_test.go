package workerpool_test

// Round 14 of adversarial tests: the stop of a pool whose workers retry a
// failed open, the stop of a failed pool and its feeders, the stop's shared
// wait for running workers and its reports of stuck ones, and idle pools
// over many app lifetimes. Shared fixture below.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type res14 struct {
	w      W
	closed atomic.Bool
}

type r14 struct {
	fx.In
	W   W
	Res *res14
}

var errReopen14 = errors.New("attack14: open failed")

// fix14 is one pool's resources: it counts opens and closes per worker
// generation, fails opens as failOpen says and runs closeHook in cleanups.
type fix14 struct {
	mu          sync.Mutex
	opened      map[[2]int]int
	closed      map[[2]int]int
	failOpen    atomic.Pointer[func(w W) bool]
	closeHook   atomic.Pointer[func(ctx context.Context, w W) error]
	check       atomic.Pointer[func(ctx context.Context, r *res14) error]
	failedOpens atomic.Int64
	lastFail    atomic.Int64 // unix nanos of the last failed open
	evMu        sync.Mutex
	evs         []workerpool.Event
}

func newFix14() *fix14 {
	return &fix14{opened: map[[2]int]int{}, closed: map[[2]int]int{}}
}

func (f *fix14) setFail(fn func(w W) bool) { f.failOpen.Store(&fn) }
func (f *fix14) setClose(fn func(ctx context.Context, w W) error) {
	f.closeHook.Store(&fn)
}

func (f *fix14) options(extra ...workerpool.Option) []workerpool.Option {
	opts := []workerpool.Option{
		workerpool.Resources(resources.PerWorker(func(ctx context.Context, w W) (*res14, func(context.Context) error, error) {
			if fp := f.failOpen.Load(); fp != nil && (*fp)(w) {
				f.failedOpens.Add(1)
				f.lastFail.Store(time.Now().UnixNano())
				return nil, nil, errReopen14
			}
			rs := &res14{w: w}
			f.mu.Lock()
			f.opened[[2]int{w.ID, w.Generation}]++
			f.mu.Unlock()
			return rs, func(ctx context.Context) error {
				var err error
				if hp := f.closeHook.Load(); hp != nil {
					err = (*hp)(ctx, w)
				}
				rs.closed.Store(true)
				f.mu.Lock()
				f.closed[[2]int{w.ID, w.Generation}]++
				f.mu.Unlock()
				return err
			}, nil
		}, resources.Name("res14"), resources.Check(func(ctx context.Context, r *res14) error {
			if cp := f.check.Load(); cp != nil {
				return (*cp)(ctx, r)
			}
			return nil
		}))),
		workerpool.Events(func(e workerpool.Event) {
			f.evMu.Lock()
			f.evs = append(f.evs, e)
			f.evMu.Unlock()
		}),
	}
	return append(opts, extra...)
}

func (f *fix14) sawEvent(match func(workerpool.Event) bool) bool {
	f.evMu.Lock()
	defer f.evMu.Unlock()
	for _, e := range f.evs {
		if match(e) {
			return true
		}
	}
	return false
}

// checkExactlyOnce: every generation that opened closed exactly once.
func (f *fix14) checkExactlyOnce(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, o := range f.opened {
		if o != 1 {
			t.Errorf("worker %d gen %d opened %d times", k[0], k[1], o)
		}
		if f.closed[k] != 1 {
			t.Errorf("worker %d gen %d opened, closed %d times", k[0], k[1], f.closed[k])
		}
	}
	for k, c := range f.closed {
		if f.opened[k] == 0 {
			t.Errorf("worker %d gen %d closed %d times, never opened", k[0], k[1], c)
		}
	}
}

func (f *fix14) openCounts() (opened, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.opened {
		opened += n
	}
	for _, n := range f.closed {
		closed += n
	}
	return
}

// app14 builds and starts an app with one pool of r14.
func app14(t testing.TB, f *fix14, opts ...workerpool.Option) (*workerpool.Pool[r14], *fx.App) {
	t.Helper()
	var p *workerpool.Pool[r14]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()), workerpool.Provide[r14]("atk14", f.options(opts...)...), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatalf("fx.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return p, app
}

// rep14 is one GoReport task's record.
type rep14 struct {
	ran     atomic.Int32
	reports atomic.Int32
	outcome atomic.Int32
	err     atomic.Pointer[error]
}

type reps14 struct {
	list []*rep14
	mu   sync.Mutex
}

// goReport submits a GoReport task that runs body and records its fate.
func (rs *reps14) goReport(p *workerpool.Pool[r14], body func(ctx context.Context, r r14) error) (*rep14, error) {
	r := &rep14{}
	err := p.GoReport(context.Background(), func(ctx context.Context, res r14) error {
		r.ran.Add(1)
		if body != nil {
			return body(ctx, res)
		}
		return nil
	}, func(o workerpool.Outcome, err error) {
		r.outcome.Store(int32(o))
		r.err.Store(&err)
		r.reports.Add(1)
	})
	if err == nil {
		rs.mu.Lock()
		rs.list = append(rs.list, r)
		rs.mu.Unlock()
	}
	return r, err
}

// check: every accepted task reported exactly once, and NotRun iff it did
// not run; returns how many ran and how many did not.
func (rs *reps14) check(t testing.TB) (ran, notRun int) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i, r := range rs.list {
		n, reps := r.ran.Load(), r.reports.Load()
		if reps != 1 {
			t.Errorf("task %d: reported %d times (ran %d)", i, reps, n)
			continue
		}
		o := workerpool.Outcome(r.outcome.Load())
		if n > 1 {
			t.Errorf("task %d ran %d times", i, n)
		}
		if (n == 0) != (o == workerpool.NotRun) {
			t.Errorf("task %d: ran %d times but reported %v (%v)", i, n, o, *r.err.Load())
		}
		if o == workerpool.NotRun {
			notRun++
			if !errors.Is(*r.err.Load(), workerpool.ErrClosed) {
				t.Errorf("task %d: NotRun with %v, want ErrClosed", i, *r.err.Load())
			}
		} else {
			ran++
		}
	}
	return
}

// waitReports waits (up to d) until every accepted task was reported.
func (rs *reps14) waitReports(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		all := true
		rs.mu.Lock()
		for _, r := range rs.list {
			if r.reports.Load() == 0 {
				all = false
				break
			}
		}
		rs.mu.Unlock()
		if all {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// drainStop14 stops p under Drain with ctx — by app.Stop if byApp (the
// pool's OnStop policy is the default, Drain), else by Pool.Stop — and
// returns how long it took and its error, as timedStop does.
func drainStop14(t testing.TB, byApp bool, p *workerpool.Pool[r14], app *fx.App, ctx context.Context) (time.Duration, error) {
	t.Helper()
	if byApp {
		return timedStop(t, "app.Stop", 30*time.Second, func() error { return app.Stop(ctx) })
	}
	return timedStop(t, "Pool.Stop", 30*time.Second, func() error { return p.Stop(ctx, workerpool.Drain) })
}

// timedStop runs stop and returns its error and how long it took; if it
// has not returned within hang, the test fails (and still waits for it, so
// that goleak stays meaningful).
func timedStop(t testing.TB, what string, hang time.Duration, stop func() error) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- stop() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(hang):
		t.Errorf("%s did not return within %v", what, hang)
		err := <-done
		return time.Since(start), err
	}
}

// statsZero polls until Stats shows no worker, busy, queued, opening or
// closing, for up to d.
func statsZero(t testing.TB, p interface{ Stats() workerpool.Stats }, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := p.Stats()
		if st.Workers == 0 && st.Busy == 0 && st.Queued == 0 && st.Opening == 0 && st.Closing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Stats after the stop: %+v", st)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
