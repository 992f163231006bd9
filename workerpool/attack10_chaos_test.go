package workerpool_test

// Round 10: workers whose constructors grow their stacks or not, at random,
// in fixed, elastic, QueueSize(0) and LockOSThread pools, with tasks that
// panic, call runtime.Goexit or return ErrBroken (so that workers rebuild,
// and successors take over from workers whose task ended their goroutine),
// Resize during the load, and a stop with a random policy right after. Every
// resource that opened closes exactly once, in reverse order, by the time
// app.Stop returns; every Do returns a documented result; nothing hangs or
// leaks (goleak in TestMain).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

func TestAttack10DeepChaos(t *testing.T) {
	trials := 40
	if testing.Short() {
		trials = 10
	}
	for trial := range trials {
		seed := rand.Uint64()
		t.Run(fmt.Sprintf("%d", trial), func(t *testing.T) { a10chaos(t, seed) })
	}
}

func a10chaos(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	kind := []string{"fixed", "elastic", "q0", "locked"}[r.IntN(4)]
	pol := []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued, workerpool.Cancel}[r.IntN(3)]
	workers := 1 + r.IntN(24)
	deepP := r.Float64()
	failP := r.Float64() * 0.3
	l := newA10Ledger()
	var mu sync.Mutex
	rr := rand.New(rand.NewPCG(seed, 2))
	roll := func(p float64) bool { mu.Lock(); defer mu.Unlock(); return rr.Float64() < p }
	evs := &a10Events{}
	opts := []workerpool.Option{
		workerpool.Events(evs.add),
		workerpool.OnStop(pol),
		workerpool.ErrorHandler(func(error) {}),
		workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
		workerpool.Resources(
			resources.PerWorker(func(w W) (*ResA, func(), error) {
				if roll(deepP) {
					deep(40)
				}
				id := l.open(0)
				a := &ResA{w}
				l.bind(a, id)
				return a, func() { l.close(id) }, nil
			}),
			resources.PerWorker(func(a *ResA, w W) (*ResB, func(), error) {
				if w.Generation > 0 && roll(failP) {
					if roll(0.5) {
						return nil, nil, errors.New("a10 reopen failed")
					}
					deep(20)
					panic("a10 reopen panicked")
				}
				if roll(deepP) {
					deep(64)
				}
				id := l.open(l.idOf(a))
				return &ResB{a, w}, func() { l.close(id) }, nil
			}),
		),
	}
	switch kind {
	case "fixed":
		opts = append(opts, workerpool.Workers(workers))
	case "elastic":
		opts = append(opts, workerpool.Elastic(r.IntN(2), workers, time.Duration(1+r.IntN(5))*time.Millisecond))
	case "q0":
		opts = append(opts, workerpool.Workers(workers), workerpool.QueueSize(0))
	case "locked":
		opts = append(opts, workerpool.Workers(workers), workerpool.LockOSThread())
	}
	var p *workerpool.Pool[AB]
	app := a10app(t, &p, "a10chaos", []fx.Option{fx.Supply(zap.NewNop())}, opts...)
	ctx, cancel := a10ctx(20 * time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("seed %#x: start: %v", seed, err)
	}
	var wg sync.WaitGroup
	var bad sync.Map
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gr := rand.New(rand.NewPCG(seed, uint64(10+g)))
			for range 30 {
				what := gr.IntN(10)
				err := p.Do(ctx, func(_ context.Context, d AB) error {
					if d.B == nil || d.B.a == nil {
						return errors.New("a10 nil resource")
					}
					switch what {
					case 0:
						panic("a10 task panic")
					case 1:
						runtime.Goexit()
					case 2:
						return resources.ErrBroken
					case 3:
						deep(30)
					}
					return nil
				})
				var pe *workerpool.PanicError
				switch {
				case err == nil:
				case errors.Is(err, workerpool.ErrGoexit), errors.As(err, &pe), errors.Is(err, resources.ErrBroken), errors.Is(err, workerpool.ErrClosed):
				default:
					bad.Store(err.Error(), true)
				}
			}
		}()
	}
	if kind != "elastic" && r.IntN(2) == 0 {
		wg.Add(1)
		rz := rand.New(rand.NewPCG(seed, 3))
		go func() {
			defer wg.Done()
			for range 5 {
				_ = p.Resize(1 + rz.IntN(24))
				time.Sleep(time.Millisecond)
			}
		}()
	}
	if r.IntN(3) == 0 {
		time.Sleep(time.Duration(r.IntN(5)) * time.Millisecond)
	} else {
		a10within(t, "the load", 20*time.Second, wg.Wait)
	}
	var stopErr error
	a10within(t, "app.Stop", 25*time.Second, func() {
		sctx, scancel := a10ctx(20 * time.Second)
		defer scancel()
		stopErr = app.Stop(sctx)
	})
	a10within(t, "the load after the stop", 20*time.Second, wg.Wait)
	if stopErr != nil {
		t.Errorf("seed %#x (%s %v): stop: %v", seed, kind, pol, stopErr)
	}
	bad.Range(func(k, _ any) bool { t.Errorf("seed %#x: Do: %v", seed, k); return true })
	l.check(t)
	o, c := l.counts()
	if o != c || (o == 0 && kind != "elastic") {
		t.Errorf("seed %#x (%s %v): %d opens, %d closes", seed, kind, pol, o, c)
	}
	// Events: per resource and per worker generation, as many successful
	// opens as closes (a failed open's retry reopens the same generation).
	ro, rc, wo, wc := a10eventCounts(evs.all())
	total := 0
	for k, n := range ro {
		total += n
		if rc[k] != n {
			t.Errorf("seed %#x: events: %s opened %d, closed %d", seed, k, n, rc[k])
		}
	}
	for k, n := range wo {
		if wc[k] != n {
			t.Errorf("seed %#x: events: worker %s opened %d, closed %d", seed, k, n, wc[k])
		}
	}
	if total != o {
		t.Errorf("seed %#x: %d constructors returned, %d ResourceOpened events without Err", seed, o, total)
	}
	if t.Failed() {
		t.Logf("seed %#x kind %s policy %v workers %d deepP %.2f failP %.2f", seed, kind, pol, workers, deepP, failP)
	}
}

// a10ledger records every open attempt by id: each opened id closes exactly
// once, and a dependant (parent != 0) closes before its parent.
type a10ledger struct {
	mu     sync.Mutex
	next   int
	parent map[int]int
	closed map[int]int
	order  map[int]int // id -> position of its close
	ids    map[*ResA]int
	pos    int
}

func newA10Ledger() *a10ledger {
	return &a10ledger{parent: map[int]int{}, closed: map[int]int{}, order: map[int]int{}, ids: map[*ResA]int{}}
}

func (l *a10ledger) open(parent int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.parent[l.next] = parent
	return l.next
}
func (l *a10ledger) bind(a *ResA, id int) { l.mu.Lock(); l.ids[a] = id; l.mu.Unlock() }
func (l *a10ledger) idOf(a *ResA) int     { l.mu.Lock(); defer l.mu.Unlock(); return l.ids[a] }
func (l *a10ledger) close(id int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed[id]++
	l.pos++
	l.order[id] = l.pos
}
func (l *a10ledger) counts() (o, c int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.closed {
		c += n
	}
	return len(l.parent), c
}
func (l *a10ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, par := range l.parent {
		if l.closed[id] != 1 {
			t.Errorf("open %d closed %d times", id, l.closed[id])
		}
		if par != 0 && l.closed[par] == 1 && l.closed[id] == 1 && l.order[id] > l.order[par] {
			t.Errorf("open %d closed after the resource it depends on (%d)", id, par)
		}
	}
	for id := range l.closed {
		if _, ok := l.parent[id]; !ok {
			t.Errorf("close %d never opened", id)
		}
	}
}
