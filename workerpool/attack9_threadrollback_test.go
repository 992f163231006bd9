//go:build linux

package workerpool_test

// Round 9, item 2: with LockOSThread, a failed open closes what it had
// opened on the thread it opened on — at the start (a later constructor
// fails, panics, or the start is cut by a stop or its deadline) and in
// rebuilds (MaxTasksPerWorker, ErrBroken, failed checks, Resize growth).

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type T9a struct{ tid int }
type T9b struct{ tid int }
type T9c struct{ tid int }
type T9Deps struct {
	fx.In
	C *T9c
	W W
}

type t9rec struct {
	key     string
	openTid int
	close   int // tid of close; 0: not closed
	closes  int
}

type t9Log struct {
	mu      sync.Mutex
	recs    []*t9rec
	attempt map[string]int // per resource/worker/gen: how many opens of C
	fault   func(w W, attempt int) string
	bad     []string
}

func (l *t9Log) opened(res string, w W) *t9rec {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &t9rec{key: fmt.Sprintf("%s/w%d/g%d/#%d", res, w.ID, w.Generation, len(l.recs)), openTid: syscall.Gettid()}
	l.recs = append(l.recs, r)
	return r
}

func (l *t9Log) closed(r *t9rec) {
	tid := syscall.Gettid()
	l.mu.Lock()
	defer l.mu.Unlock()
	r.close = tid
	r.closes++
}

func (l *t9Log) counts() (o, c int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		o++
		if r.closes > 0 {
			c++
		}
	}
	return
}

// check: every open closed exactly once, on the thread it opened on.
func (l *t9Log) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
	for _, r := range l.recs {
		switch {
		case r.closes != 1:
			t.Errorf("%s closed %d times", r.key, r.closes)
		case r.close != r.openTid:
			t.Errorf("%s opened on thread %d, closed on thread %d", r.key, r.openTid, r.close)
		}
	}
}

func (l *t9Log) option() workerpool.Option {
	l.attempt = map[string]int{}
	return workerpool.Resources(
		resources.PerWorker(func(w W) (*T9a, func(), error) {
			r := l.opened("A", w)
			return &T9a{r.openTid}, func() { l.closed(r) }, nil
		}, resources.Check(func(context.Context, *T9a) error { return t9checkErr.Swap(nil) })),
		resources.PerWorker(func(a *T9a, w W) (*T9b, func(), error) {
			r := l.opened("B", w)
			if a.tid != r.openTid {
				l.mu.Lock()
				l.bad = append(l.bad, fmt.Sprintf("%s opened on thread %d, A on %d", r.key, r.openTid, a.tid))
				l.mu.Unlock()
			}
			return &T9b{r.openTid}, func() { l.closed(r) }, nil
		}),
		resources.PerWorker(func(ctx context.Context, b *T9b, w W) (*T9c, func(), error) {
			l.mu.Lock()
			k := fmt.Sprintf("w%d/g%d", w.ID, w.Generation)
			l.attempt[k]++
			n := l.attempt[k]
			l.mu.Unlock()
			switch l.fault(w, n) {
			case "fail":
				return nil, nil, errors.New("t9 injected failure")
			case "panic":
				panic("t9 injected panic")
			case "goexit":
				runtime.Goexit()
			case "hang":
				<-ctx.Done()
				return nil, nil, context.Cause(ctx)
			case "hangIgnore":
				time.Sleep(1500 * time.Millisecond)
				return nil, nil, errors.New("t9 late failure")
			}
			r := l.opened("C", w)
			return &T9c{r.openTid}, func() { l.closed(r) }, nil
		}),
	)
}

type t9swap struct{ v atomic.Value }

func (s *t9swap) Swap(e error) error {
	old := s.v.Swap(t9box{e})
	if old == nil {
		return nil
	}
	return old.(t9box).err
}

type t9box struct{ err error }

var t9checkErr = &t9swap{}

func t9app(tt *testing.T, l *t9Log, name string, startTimeout time.Duration, opts ...workerpool.Option) (*workerpool.Pool[T9Deps], *fx.App) {
	tt.Helper()
	var p *workerpool.Pool[T9Deps]
	opts = append([]workerpool.Option{workerpool.LockOSThread(), l.option(), workerpool.RestartBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	app := fx.New(fx.NopLogger, fx.StartTimeout(startTimeout), fx.StopTimeout(10*time.Second),
		workerpool.Provide[T9Deps](name, opts...), fx.Populate(&p))
	if err := app.Err(); err != nil {
		tt.Fatal(err)
	}
	return p, app
}

func t9startCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func TestAttack9ThreadRollbackAtStart(tt *testing.T) {
	for _, kind := range []string{"fail", "panic", "goexit", "hang-stop", "hang-deadline", "hangIgnore-deadline"} {
		tt.Run(kind, func(tt *testing.T) {
			l := &t9Log{}
			var hung sync.Once
			hungCh := make(chan struct{})
			l.fault = func(w W, n int) string {
				if w.ID != 2 {
					return ""
				}
				switch kind {
				case "fail", "panic", "goexit":
					return kind
				case "hang-stop":
					hung.Do(func() { close(hungCh) })
					return "hang"
				case "hang-deadline":
					return "hang"
				default:
					return "hangIgnore"
				}
			}
			budget := 10 * time.Second
			if kind != "hang-stop" && kind != "fail" && kind != "panic" && kind != "goexit" {
				budget = 900 * time.Millisecond
			}
			p, app := t9app(tt, l, "t9s"+kind, budget, workerpool.Workers(4))
			ctx, cancel := t9startCtx(budget)
			defer cancel()
			var stopErr error
			stopDone := make(chan struct{})
			if kind == "hang-stop" {
				go func() {
					defer close(stopDone)
					<-hungCh
					time.Sleep(20 * time.Millisecond)
					sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
					defer c()
					stopErr = p.Stop(sctx, workerpool.Drain)
				}()
			} else {
				close(stopDone)
			}
			err := app.Start(ctx)
			atkWait(tt, "Stop", 15*time.Second, stopDone)
			tt.Logf("start: %v; stop: %v", err, stopErr)
			if err == nil {
				tt.Fatal("start succeeded")
			}
			if kind == "hang-stop" && !errors.Is(err, workerpool.ErrClosed) {
				tt.Errorf("start cut by Stop = %v, want ErrClosed", err)
			}
			atkPoll(tt, "all closed", 10*time.Second, func() bool { o, c := l.counts(); return o == c })
			l.check(tt)
			atkPoll(tt, "stats settle", 5*time.Second, func() bool {
				s := p.Stats()
				return s.Workers == 0 && s.Opening == 0 && s.Closing == 0
			})
		})
	}
}

func TestAttack9ThreadRollbackInRebuild(tt *testing.T) {
	for _, trig := range []string{"maxtasks", "broken", "check", "resize"} {
		for _, kind := range []string{"fail", "panic", "goexit", "hang-stop"} {
			tt.Run(trig+"-"+kind, func(tt *testing.T) {
				l := &t9Log{}
				hungCh := make(chan struct{})
				var hung sync.Once
				var failed atomic.Int64
				l.fault = func(w W, n int) string {
					// the rebuilt generation (or the grown worker 2) fails its
					// first two attempts, then opens (or, hang-stop, hangs).
					target := w.Generation >= 1 || (trig == "resize" && w.ID == 2)
					if !target {
						return ""
					}
					if kind == "hang-stop" {
						hung.Do(func() { close(hungCh) })
						return "hang"
					}
					if n <= 2 {
						failed.Add(1)
						return kind
					}
					return ""
				}
				opts := []workerpool.Option{workerpool.Workers(2)}
				switch trig {
				case "maxtasks":
					opts = append(opts, workerpool.MaxTasksPerWorker(1))
				case "check":
					opts = append(opts, workerpool.CheckIdle(time.Nanosecond))
				}
				t9checkErr.Swap(nil)
				p, app := t9app(tt, l, "t9r"+trig+kind, 10*time.Second, opts...)
				ctx, cancel := t9startCtx(10 * time.Second)
				defer cancel()
				if err := app.Start(ctx); err != nil {
					tt.Fatal(err)
				}
				defer func() {
					sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
					defer c()
					_ = app.Stop(sctx)
				}()
				switch trig {
				case "maxtasks":
					_ = p.Do(ctx, func(context.Context, T9Deps) error { return nil })
				case "broken":
					_ = p.Do(ctx, func(context.Context, T9Deps) error { return fmt.Errorf("x: %w", resources.ErrBroken) })
				case "check":
					_ = p.Do(ctx, func(context.Context, T9Deps) error { return nil })
					time.Sleep(5 * time.Millisecond)
					t9checkErr.Swap(errors.New("t9 check failed"))
					ran := false
					dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
					err := p.Do(dctx, func(context.Context, T9Deps) error { ran = true; return nil })
					dcancel()
					tt.Logf("Do after failed check: err=%v ran=%v stats=%+v", err, ran, p.Stats())
					if kind != "hang-stop" && (err != nil || !ran) {
						tt.Errorf("Do after a failed check whose rebuild %ss twice then opens: err=%v ran=%v", kind, err, ran)
					}
				case "resize":
					if err := p.Resize(3); err != nil {
						tt.Fatal(err)
					}
				}
				if kind == "hang-stop" {
					atkWait(tt, "rebuild hangs", 10*time.Second, hungCh)
					time.Sleep(20 * time.Millisecond)
				} else {
					atkPoll(tt, "rebuild failed twice", 10*time.Second, func() bool { return failed.Load() >= 2 })
					// and opens on the third attempt
					atkPoll(tt, "workers back", 10*time.Second, func() bool {
						s := p.Stats()
						want := 2
						if trig == "resize" {
							want = 3
						}
						return s.Workers == want && s.Opening == 0
					})
				}
				sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
				defer c()
				stopErr := p.Stop(sctx, workerpool.Drain)
				tt.Logf("stop: %v", stopErr)
				atkPoll(tt, "all closed", 10*time.Second, func() bool { o, c := l.counts(); return o == c })
				l.check(tt)
			})
		}
	}
}
