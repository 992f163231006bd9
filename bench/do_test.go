package bench

import (
	"testing"

	"github.com/Jeffail/tunny"
	"github.com/alitto/pond/v2"
	"github.com/panjf2000/ants/v2"
)

// BenchmarkDo: request/response. 64 callers each submit a task and wait for
// it before submitting the next. conc and errgroup have no reusable pool to
// wait on one task of, so they are not in this figure.
func BenchmarkDo(b *testing.B) {
	runWidthsTasks(b, []taskKind{trivialTask, microTask}, doImpls)
}

var doImpls = []impl[func(*testing.B, int, taskKind)]{
	{"floor", doFloor},
	{"floor-typed", doFloorTyped},
	{"fxpool", doFxpool},
	{"fxpool-ctxcancel", doFxpoolCtxCancel},
	{"fxpool-submit", doFxpoolSubmit},
	{"fxpool-locked", doFxpoolLocked},
	{"pond", doPond},
	{"ants", doAnts},
	{"tunny", doTunny},
}

func doFloor(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := NewPool(w, QueueSize)
	defer p.Stop()
	runCallers(b, func(i int, reply chan struct{}) {
		p.Go(func() {
			Work(steps)
			Sink(uint64(i))
			reply <- struct{}{}
		})
		<-reply
	})
}

type request struct {
	i     int
	reply chan struct{}
}

func doFloorTyped(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := NewTypedPool(w, QueueSize, func(r request) {
		Work(steps)
		Sink(uint64(r.i))
		r.reply <- struct{}{}
	})
	defer p.Stop()
	runCallers(b, func(i int, reply chan struct{}) {
		p.Go(request{i, reply})
		<-reply
	})
}

func doPond(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := pond.NewPool(w, pond.WithQueueSize(QueueSize))
	defer p.StopAndWait()
	runCallers(b, func(i int, _ chan struct{}) {
		err := p.Submit(func() {
			Work(steps)
			Sink(uint64(i))
		}).Wait()
		if err != nil {
			b.Error(err)
		}
	})
}

func doAnts(b *testing.B, w int, k taskKind) {
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
	runCallers(b, func(i int, reply chan struct{}) {
		err := p.Submit(func() {
			Work(steps)
			Sink(uint64(i))
			reply <- struct{}{}
		})
		if err != nil {
			b.Error(err)
			return
		}
		<-reply
	})
}

func doTunny(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := tunny.NewFunc(w, func(payload any) any {
		Work(steps)
		Sink(uint64(payload.(int)))
		return nil
	})
	defer p.Close()
	runCallers(b, func(i int, _ chan struct{}) {
		p.Process(i)
	})
}
