package bench

import (
	"testing"

	"github.com/Jeffail/tunny"
	"github.com/alitto/pond/v2"
	"github.com/panjf2000/ants/v2"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"
)

// BenchmarkGo: fire-and-forget dispatch of b.N tasks, then wait for all of
// them. A task counts itself done on [pending]; task=static captures nothing.
func BenchmarkGo(b *testing.B) {
	runWidthsTasks(b, []taskKind{trivialTask, staticTask, microTask}, goImpls)
}

var goImpls = []impl[func(*testing.B, int, taskKind)]{
	{"floor", goFloor},
	{"floor-typed", goFloorTyped},
	{"fxpool", goFxpool},
	{"fxpool-ctxvalue", goFxpoolCtxValue},
	{"fxpool-goreport", goFxpoolReport},
	{"fxpool-group", goFxpoolGroup},
	{"fxpool-locked", goFxpoolLocked},
	{"pond", goPond},
	{"conc", goConc},
	{"errgroup", goErrgroup},
	{"ants", goAnts},
	{"tunny", goTunny},
}

func staticFunc() {
	Sink(0)
	pending.Done()
}

func staticErrFunc() error {
	Sink(0)
	pending.Done()
	return nil
}

// plainTask is the func() form of the i-th task of kind k.
func plainTask(k taskKind, steps, i int) func() {
	if k.static {
		return staticFunc
	}
	return func() {
		Work(steps)
		Sink(uint64(i))
		pending.Done()
	}
}

func goFloor(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := NewPool(w, QueueSize)
	defer p.Stop()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		p.Go(plainTask(k, steps, i))
	}
	pending.Wait()
}

func goFloorTyped(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := NewTypedPool(w, QueueSize, func(i int) {
		Work(steps)
		Sink(uint64(i))
		pending.Done()
	})
	defer p.Stop()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		p.Go(i)
	}
	pending.Wait()
}

func goPond(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := pond.NewPool(w, pond.WithQueueSize(QueueSize))
	defer p.StopAndWait()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		if err := p.Go(plainTask(k, steps, i)); err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}

// goConc: a conc pool cannot be reused after Wait, so the pool is made in
// the timed loop; the cost is paid once per b.N tasks.
func goConc(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	pending.Add(b.N)
	b.ResetTimer()
	p := pool.New().WithMaxGoroutines(w)
	for i := range b.N {
		p.Go(plainTask(k, steps, i))
	}
	p.Wait()
	pending.Wait()
}

// goErrgroup: errgroup starts a goroutine per task, at most w at once.
func goErrgroup(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	pending.Add(b.N)
	b.ResetTimer()
	var g errgroup.Group
	g.SetLimit(w)
	for i := range b.N {
		if k.static {
			g.Go(staticErrFunc)
			continue
		}
		g.Go(func() error {
			Work(steps)
			Sink(uint64(i))
			pending.Done()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	pending.Wait()
}

func goAnts(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, err := ants.NewPool(w)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := p.ReleaseTimeout(ctxTimeout); err != nil {
			b.Error(err)
		}
	}()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		if err := p.Submit(plainTask(k, steps, i)); err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}

// goTunny: tunny has no asynchronous submit: Process blocks until a worker
// has run the payload. Fire-and-forget with tunny is callers goroutines that
// call Process, which is what this figure measures.
func goTunny(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := tunny.NewFunc(w, func(payload any) any {
		Work(steps)
		Sink(uint64(payload.(int)))
		pending.Done()
		return nil
	})
	defer p.Close()
	pending.Add(b.N)
	runCallers(b, func(i int, _ chan struct{}) {
		p.Process(i)
	})
	pending.Wait()
}
