package workerpool_test

// Round 7: a per-worker cleanup that calls runtime.Goexit. "A Goexit in a
// constructor or cleanup is an error of that resource." CHANGELOG: "a worker's
// own close now runs them [the cleanups behind it] too before the Goexit ends
// its goroutine". LockOSThread: "locks each worker's goroutine to an OS thread
// of its own, from its first open to its last close, rebuilds included: for
// resources that must be opened, used and closed on one thread".
//
// Three resources per worker, A ← B ← C (C depends on B, B on A). B's cleanup
// calls Goexit. C closes before it, A after it: each must close exactly once,
// A after B, and — with LockOSThread — on the thread it was opened on. The
// worker must go on serving after a rebuild (recycle) whose close Goexited,
// a stop must return, and nothing may leak.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a7A struct {
	w   W
	tid int
}
type a7B struct{ a *a7A }
type a7C struct{ b *a7B }

type a7ABC struct {
	fx.In
	A *a7A
	C *a7C
	W W
}

type a7Journal struct {
	mu     sync.Mutex
	events []string
	opened map[string]int // "A/w/g" → tid
	closed map[string][]int
	errs   []string
}

func newA7Journal() *a7Journal {
	return &a7Journal{opened: map[string]int{}, closed: map[string][]int{}}
}

func (j *a7Journal) open(res string, w W) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := fmt.Sprintf("%s/%d/%d", res, w.ID, w.Generation)
	if _, ok := j.opened[k]; ok {
		j.errs = append(j.errs, "opened twice: "+k)
	}
	j.opened[k] = syscall.Gettid()
	j.events = append(j.events, "open "+k)
}

func (j *a7Journal) close(res string, w W) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := fmt.Sprintf("%s/%d/%d", res, w.ID, w.Generation)
	j.closed[k] = append(j.closed[k], syscall.Gettid())
	j.events = append(j.events, "close "+k)
}

func (j *a7Journal) counts() (o, c int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, tids := range j.closed {
		c += len(tids)
	}
	return len(j.opened), c
}

// check: every resource opened closed exactly once, C before B before A;
// with sameThread, each on the thread it opened on (B excepted: it is the
// one that ends its goroutine).
func (j *a7Journal) check(t *testing.T, sameThread bool) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.errs {
		t.Error(e)
	}
	pos := map[string]int{}
	for i, e := range j.events {
		pos[e] = i
	}
	for k, tid := range j.opened {
		cl := j.closed[k]
		if len(cl) != 1 {
			t.Errorf("%s opened, closed %d times", k, len(cl))
			continue
		}
		if sameThread && cl[0] != tid && !strings.HasPrefix(k, "B/") {
			t.Errorf("%s opened on thread %d, closed on thread %d", k, tid, cl[0])
		}
		rest := k[1:]
		switch k[0] {
		case 'C':
			if pos["close C"+rest] > pos["close B"+rest] {
				t.Errorf("C%s closed after B%s", rest, rest)
			}
		case 'B':
			if pos["close B"+rest] > pos["close A"+rest] {
				t.Errorf("B%s closed after A%s", rest, rest)
			}
		}
	}
	for k := range j.closed {
		if _, ok := j.opened[k]; !ok {
			t.Errorf("%s closed, never opened", k)
		}
	}
}

// a7Resources: B's cleanup calls Goexit when goexit(w) says so.
func a7Resources(j *a7Journal, goexit func(W) bool) workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(w W) (*a7A, func(), error) {
			j.open("A", w)
			return &a7A{w: w, tid: syscall.Gettid()}, func() { j.close("A", w) }, nil
		}),
		resources.PerWorker(func(a *a7A, w W) (*a7B, func(), error) {
			j.open("B", w)
			return &a7B{a}, func() {
				j.close("B", w)
				if goexit(w) {
					if a7PanicInstead.Load() {
						panic("cleanup B panics")
					}
					runtime.Goexit()
				}
			}, nil
		}),
		resources.PerWorker(func(b *a7B, w W) (*a7C, func(), error) {
			j.open("C", w)
			return &a7C{b}, func() { j.close("C", w) }, nil
		}),
	)
}

func a7Task(locked bool, ran *atomic.Int64) func(context.Context, a7ABC) error {
	return func(ctx context.Context, r a7ABC) error {
		if locked && syscall.Gettid() != r.A.tid {
			return fmt.Errorf("task of worker %d gen %d on thread %d, A opened on %d", r.W.ID, r.W.Generation, syscall.Gettid(), r.A.tid)
		}
		if r.C.b.a != r.A {
			return errors.New("C built on another worker's A")
		}
		ran.Add(1)
		return nil
	}
}

// Recycles whose close Goexits: the worker goes on serving.
func TestAttack7_CleanupGoexitOnRecycle(t *testing.T) {
	for _, locked := range []bool{false, true} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("locked=%v/workers=%d", locked, workers), func(t *testing.T) {
				j := newA7Journal()
				opts := []workerpool.Option{
					workerpool.Workers(workers), workerpool.MaxTasksPerWorker(2),
					workerpool.WithClock(&a7Clock{}), // a cleanup's Goexit waits out RestartBackoff's max: see the Bug test
					a7Resources(j, func(w W) bool { return w.Generation%2 == 0 }),
				}
				if locked {
					opts = append(opts, workerpool.LockOSThread())
				}
				p, app := atkStart[a7ABC](t, "a7recycle", opts...)
				var ran atomic.Int64
				const n = 60
				a7Within(t, "60 tasks through recycles whose cleanup Goexits", a7Hang, func() {
					var wg sync.WaitGroup
					for range 4 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range n / 4 {
								ctx, cancel := context.WithTimeout(context.Background(), a7Hang)
								if err := p.Do(ctx, a7Task(locked, &ran)); err != nil {
									t.Errorf("Do: %v", err)
								}
								cancel()
							}
						}()
					}
					wg.Wait()
				})
				if ran.Load() != n {
					t.Errorf("ran %d of %d", ran.Load(), n)
				}
				atkPoll(t, "all workers serve again", 5*time.Second, func() bool { return p.Stats().Workers == workers })
				s := p.Stats()
				t.Logf("stats %+v", s)
				var stopErr error
				a7Within(t, "app.Stop", a7Hang, func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					stopErr = app.Stop(ctx)
				})
				t.Logf("stop: %v", stopErr)
				atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := j.counts(); return o == c })
				j.check(t, locked)
			})
		}
	}
}

// A stop whose closes Goexit, in every worker: Stop returns, naming B,
// and A still closes on its thread.
func TestAttack7_CleanupGoexitOnStop(t *testing.T) {
	for _, locked := range []bool{false, true} {
		for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel} {
			t.Run(fmt.Sprintf("locked=%v/%v", locked, policy), func(t *testing.T) {
				j := newA7Journal()
				opts := []workerpool.Option{
					workerpool.Workers(3),
					a7Resources(j, func(W) bool { return true }),
				}
				if locked {
					opts = append(opts, workerpool.LockOSThread())
				}
				p, _ := atkStart[a7ABC](t, "a7stop", opts...)
				var ran atomic.Int64
				for range 20 {
					if err := p.Go(context.Background(), a7Task(locked, &ran)); err != nil {
						t.Fatal(err)
					}
				}
				var stopErr error
				start := time.Now()
				a7Within(t, "Stop", a7Hang, func() {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					stopErr = p.Stop(ctx, policy)
				})
				took := time.Since(start)
				t.Logf("Stop took %v: %v", took, stopErr)
				if stopErr == nil {
					t.Error("Stop = nil, though every worker's B cleanup called Goexit")
				} else {
					// (That it names no resource is TestAttack7CleanupGoexitIsAnErrorOfItsResource.)
					if strings.Contains(stopErr.Error(), "stuck") || strings.Contains(stopErr.Error(), "still") {
						t.Errorf("Stop reports a worker stuck, though every cleanup returned or Goexited: %v", stopErr)
					}
				}
				if policy == workerpool.Drain && ran.Load() != 20 {
					t.Errorf("Drain ran %d of 20", ran.Load())
				}
				atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := j.counts(); return o == c })
				j.check(t, locked)
				if s := p.Stats(); s.Workers != 0 || s.Closing != 0 || s.Busy != 0 {
					t.Errorf("Stats after Stop: %+v", s)
				}
			})
		}
	}
}

// Resize down retires workers whose close Goexits; Resize up again; the
// pool serves with exactly the workers asked for.
func TestAttack7_CleanupGoexitOnResize(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			j := newA7Journal()
			opts := []workerpool.Option{
				workerpool.Workers(4),
				a7Resources(j, func(W) bool { return true }),
			}
			if locked {
				opts = append(opts, workerpool.LockOSThread())
			}
			p, app := atkStart[a7ABC](t, "a7resize", opts...)
			var ran atomic.Int64
			for round := range 5 {
				if err := p.Resize(1); err != nil {
					t.Fatal(err)
				}
				atkPoll(t, "1 worker", 5*time.Second, func() bool { s := p.Stats(); return s.Workers == 1 && s.Closing == 0 })
				if err := p.Resize(4); err != nil {
					t.Fatal(err)
				}
				atkPoll(t, "4 workers", 5*time.Second, func() bool { return p.Stats().Workers == 4 })
				a7Within(t, "Do after resizes", a7Hang, func() {
					for range 8 {
						if err := p.Do(context.Background(), a7Task(locked, &ran)); err != nil {
							t.Errorf("round %d: Do = %v", round, err)
						}
					}
				})
			}
			a7Within(t, "app.Stop", a7Hang, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = app.Stop(ctx)
			})
			atkPoll(t, "every opened resource closes", 5*time.Second, func() bool { o, c := j.counts(); return o == c })
			j.check(t, locked)
		})
	}
}

var a7PanicInstead atomic.Bool
