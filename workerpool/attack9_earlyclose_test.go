package workerpool_test

// Round 9, item 3: a worker that leaves before the stop (Resize down,
// elastic retirement, rebuild, recycle) and whose cleanup fails: the later
// stop's error does not include it; its WorkerClosed/ResourceClosed events
// report it. A cleanup that fails during the stop IS in the stop's error
// (Pool.Stop and app.Stop). Every cleanup here fails, with an error naming
// its worker and generation, so both directions are checked at once.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

var errE9 = errors.New("e9 cleanup failed")

type E9a struct{ w W }
type E9b struct{ w W }
type E9Deps struct {
	fx.In
	B *E9b
	W W
}

func e9name(w W) string { return fmt.Sprintf("<e9 w%d g%d>", w.ID, w.Generation) }

type e9closed struct {
	name      string
	err       error
	afterStop bool
}

type e9state struct {
	mu       sync.Mutex
	stopping atomic.Bool
	closes   []e9closed
	resErrs  map[string]bool // ResourceClosed with err, by worker name
	opened   atomic.Int64
	closed   atomic.Int64
}

func (s *e9state) option() workerpool.Option {
	s.resErrs = map[string]bool{}
	return workerpool.Events(func(e workerpool.Event) {
		switch e := e.(type) {
		case workerpool.WorkerClosed:
			s.mu.Lock()
			s.closes = append(s.closes, e9closed{e9name(e.Worker), e.Err, s.stopping.Load()})
			s.mu.Unlock()
		case workerpool.ResourceClosed:
			if e.Err != nil {
				s.mu.Lock()
				s.resErrs[e9name(e.Worker)] = true
				s.mu.Unlock()
			}
		}
	})
}

func (s *e9state) resources() workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(w W) (*E9a, func(), error) {
			s.opened.Add(1)
			return &E9a{w}, func() { s.closed.Add(1) }, nil
		}),
		resources.PerWorker(func(a *E9a, w W) (*E9b, func() error, error) {
			s.opened.Add(1)
			return &E9b{w}, func() error {
				s.closed.Add(1)
				return fmt.Errorf("%s: %w", e9name(w), errE9)
			}, nil
		}),
	)
}

func (s *e9state) earlyCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.closes {
		if !c.afterStop {
			n++
		}
	}
	return n
}

// check the stop's error against the closes seen.
func (s *e9state) check(t *testing.T, stopErr error, wantEarly int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := ""
	if stopErr != nil {
		msg = stopErr.Error()
	}
	early := 0
	for _, c := range s.closes {
		if c.err == nil || !strings.Contains(c.err.Error(), c.name) {
			t.Errorf("WorkerClosed of %s (afterStop=%v) Err = %v, want its cleanup's failure", c.name, c.afterStop, c.err)
		}
		if !s.resErrs[c.name] {
			t.Errorf("no failed ResourceClosed for %s", c.name)
		}
		if !c.afterStop {
			early++
			if strings.Contains(msg, c.name) {
				t.Errorf("stop's error carries the failed close of %s, which closed before the stop:\n%v", c.name, stopErr)
			}
		} else if !strings.Contains(msg, c.name) || !errors.Is(stopErr, errE9) {
			t.Errorf("stop's error lacks the failed close of %s, closed by the stop:\n%v", c.name, stopErr)
		}
	}
	if early < wantEarly {
		t.Errorf("only %d early closes seen, want %d", early, wantEarly)
	}
}

func e9app(t *testing.T, s *e9state, name string, opts ...workerpool.Option) (*workerpool.Pool[E9Deps], *fxpooltest.App) {
	var p *workerpool.Pool[E9Deps]
	opts = append([]workerpool.Option{s.resources(), s.option()}, opts...)
	app := fxpooltest.New(t, fx.StartTimeout(5*time.Second), fx.StopTimeout(5*time.Second),
		workerpool.Provide[E9Deps](name, opts...), fx.Populate(&p))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p, app
}

func TestAttack9EarlyCloseFailureNotInStopError(t *testing.T) {
	for _, how := range []string{"resize", "broken", "recycle", "elastic", "resizeTwice"} {
		for _, stopper := range []string{"pool", "app"} {
			t.Run(how+"-"+stopper, func(t *testing.T) {
				s := &e9state{}
				var opts []workerpool.Option
				clk := fxpooltest.NewClock()
				wantEarly := 0
				switch how {
				case "resize", "resizeTwice", "broken":
					opts = append(opts, workerpool.Workers(3))
				case "recycle":
					opts = append(opts, workerpool.Workers(2), workerpool.MaxTasksPerWorker(1))
				case "elastic":
					opts = append(opts, workerpool.Elastic(1, 3, time.Minute), clk.Option())
				}
				p, app := e9app(t, s, "e9"+how+stopper, opts...)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				switch how {
				case "resize":
					if err := p.Resize(1); err != nil {
						t.Fatal(err)
					}
					wantEarly = 2
				case "resizeTwice":
					if err := p.Resize(1); err != nil {
						t.Fatal(err)
					}
					atkPoll(t, "removed workers closed", 5*time.Second, func() bool { return s.earlyCount() >= 2 })
					if err := p.Resize(3); err != nil {
						t.Fatal(err)
					}
					atkPoll(t, "grown", 5*time.Second, func() bool { st := p.Stats(); return st.Workers == 3 && st.Opening == 0 })
					if err := p.Resize(2); err != nil {
						t.Fatal(err)
					}
					wantEarly = 3
				case "broken":
					for range 3 {
						_ = p.Do(ctx, func(context.Context, E9Deps) error { return fmt.Errorf("b: %w", resources.ErrBroken) })
					}
					wantEarly = 3
				case "recycle":
					for range 4 {
						if err := p.Do(ctx, func(context.Context, E9Deps) error { return nil }); err != nil {
							t.Fatal(err)
						}
					}
					wantEarly = 4
				case "elastic":
					rel := make(chan struct{})
					var started sync.WaitGroup
					started.Add(3)
					for range 3 {
						if err := p.Go(ctx, func(context.Context, E9Deps) error { started.Done(); <-rel; return nil }); err != nil {
							t.Fatal(err)
						}
					}
					done := make(chan struct{})
					go func() { started.Wait(); close(done) }()
					atkWait(t, "elastic grows to 3", 5*time.Second, done)
					close(rel)
					atkPoll(t, "idle", 5*time.Second, func() bool { return p.Stats().Busy == 0 })
					if err := clk.WaitTimers(ctx, 2); err != nil {
						t.Fatal(err)
					}
					clk.Add(2 * time.Minute)
					wantEarly = 2
				}
				atkPoll(t, "early closes reported", 5*time.Second, func() bool { return s.earlyCount() >= wantEarly })
				atkPoll(t, "workers settle", 5*time.Second, func() bool { st := p.Stats(); return st.Opening == 0 && st.Closing == 0 })
				s.stopping.Store(true)
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer scancel()
				var stopErr error
				if stopper == "pool" {
					stopErr = p.Stop(sctx, workerpool.Drain)
					// app.Stop afterwards returns the same result
					if err := app.Stop(sctx); (err == nil) != (stopErr == nil) {
						t.Errorf("app.Stop after Pool.Stop = %v; Pool.Stop = %v", err, stopErr)
					}
				} else {
					stopErr = app.Stop(sctx)
				}
				t.Logf("stop: %v", stopErr)
				s.check(t, stopErr, wantEarly)
				if o, c := s.opened.Load(), s.closed.Load(); o != c {
					t.Errorf("opened %d, closed %d", o, c)
				}
				app.VerifyNoLeaks()
			})
		}
	}
}

// A worker that Resize removed while it ran a task, and that closes only
// while the stop runs. The CHANGELOG says a worker "that Resize removed
// before [the stop], however long before" is not in the stop's error, so
// its failure may be in the events only; but the stop must have waited for
// its close ("blocks until the pool has stopped").
func TestAttack9ResizeRemovedClosesDuringStop(t *testing.T) {
	for _, stopper := range []string{"pool", "app"} {
		t.Run(stopper, func(t *testing.T) {
			s := &e9state{}
			p, app := e9app(t, s, "e9busy"+stopper, workerpool.Workers(3))
			release := atkBlock(t, p, 3)
			if err := p.Resize(1); err != nil {
				t.Fatal(err)
			}
			s.stopping.Store(true)
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			go func() { time.Sleep(50 * time.Millisecond); release() }()
			var stopErr error
			if stopper == "pool" {
				stopErr = p.Stop(sctx, workerpool.Drain)
			} else {
				stopErr = app.Stop(sctx)
			}
			if o, c := s.opened.Load(), s.closed.Load(); o != c {
				t.Errorf("Stop returned with %d opened, %d closed", o, c)
			}
			if stopper == "pool" {
				_ = app.Stop(sctx)
			}
			t.Logf("stop: %v", stopErr)
			s.mu.Lock()
			defer s.mu.Unlock()
			in := 0
			for _, c := range s.closes {
				if c.err == nil {
					t.Errorf("WorkerClosed of %s has no Err", c.name)
				}
				if stopErr != nil && strings.Contains(stopErr.Error(), c.name) {
					in++
				}
			}
			t.Logf("%d WorkerClosed; %d of them in the stop's error", len(s.closes), in)
			if len(s.closes) != 3 || in < 1 {
				t.Errorf("%d WorkerClosed, %d in the stop's error; want 3 and the kept worker's", len(s.closes), in)
			}
			app.VerifyNoLeaks()
		})
	}
}

// Resize(1) racing Pool.Stop: if Resize was refused, the stop closed all
// three workers and its error has all three failures; otherwise at least the
// kept worker's. Every close is over when Stop returns.
func TestAttack9ResizeRacingStop(t *testing.T) {
	for i := range 40 {
		s := &e9state{}
		p, app := e9app(t, s, fmt.Sprintf("e9race%d", i), workerpool.Workers(3))
		s.stopping.Store(true)
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		var resizeErr, stopErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); resizeErr = p.Resize(1) }()
		go func() { defer wg.Done(); stopErr = p.Stop(sctx, workerpool.Cancel) }()
		wg.Wait()
		o, c := s.opened.Load(), s.closed.Load()
		_ = app.Stop(sctx)
		scancel()
		in := 0
		s.mu.Lock()
		for _, cl := range s.closes {
			if stopErr != nil && strings.Contains(stopErr.Error(), cl.name) {
				in++
			}
		}
		n := len(s.closes)
		s.mu.Unlock()
		if resizeErr == nil && o != c {
			// a removed worker may still be closing if Resize won: it is not
			// the stop's, but the stop must have waited for it all the same
			t.Errorf("iter %d: Resize won; Stop returned with %d opened, %d closed", i, o, c)
		} else if o != c {
			t.Errorf("iter %d: Stop returned with %d opened, %d closed", i, o, c)
		}
		if n != 3 {
			t.Errorf("iter %d: %d WorkerClosed, want 3", i, n)
		}
		if resizeErr != nil && in != 3 {
			t.Errorf("iter %d: Resize refused (%v) but only %d of 3 failures in the stop's error: %v", i, resizeErr, in, stopErr)
		}
		if resizeErr == nil && in < 1 {
			t.Errorf("iter %d: no failure in the stop's error: %v", i, stopErr)
		}
	}
}
