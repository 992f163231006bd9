package bench

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/puddle/v2"
)

// BenchmarkResource: every task needs a connection-like resource ([Conn]).
// The floor and fxpool give each worker its own; puddle checks one out of a
// pool of W per task and sync.Pool gets and puts one per task, both
// dispatched by the floor pool. Fire-and-forget, then wait for all.
func BenchmarkResource(b *testing.B) {
	runWidthsTasks(b, []taskKind{trivialTask, microTask}, resourceImpls)
}

var resourceImpls = []impl[func(*testing.B, int, taskKind)]{
	{"floor", resourceFloor},
	{"fxpool", resourceFxpool},
	{"puddle", resourcePuddle},
	{"syncpool", resourceSyncPool},
}

func openConn(id int) *Conn { return &Conn{ID: id} }

func closeConn(c *Conn) { _ = c.Close() }

func resourceFloor(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p := StartResourcePool(w, QueueSize, openConn, closeConn)
	defer p.Stop()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		p.Go(func(c *Conn) {
			c.Use()
			Work(steps)
			Sink(uint64(i))
			pending.Done()
		})
	}
	pending.Wait()
}

func resourcePuddle(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	ctx := context.Background()
	var ids int
	var mu sync.Mutex
	rp, err := puddle.NewPool(&puddle.Config[*Conn]{
		Constructor: func(context.Context) (*Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			ids++
			return openConn(ids), nil
		},
		Destructor: closeConn,
		MaxSize:    int32(w),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rp.Close()
	p := NewPool(w, QueueSize)
	defer p.Stop()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		p.Go(func() {
			defer pending.Done()
			res, err := rp.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			res.Value().Use()
			Work(steps)
			Sink(uint64(i))
			res.Release()
		})
	}
	pending.Wait()
}

func resourceSyncPool(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	var ids int
	var mu sync.Mutex
	sp := sync.Pool{New: func() any {
		mu.Lock()
		defer mu.Unlock()
		ids++
		return openConn(ids)
	}}
	p := NewPool(w, QueueSize)
	defer p.Stop()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		p.Go(func() {
			c := sp.Get().(*Conn)
			c.Use()
			Work(steps)
			Sink(uint64(i))
			sp.Put(c)
			pending.Done()
		})
	}
	pending.Wait()
}
