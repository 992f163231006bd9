package workerpool_test

// Round 8: pools built from pools. Pool "a8front"'s per-worker constructor
// takes the *Pool of "a8back" from the fx graph, so, as for any app-scoped
// value, back starts before front and stops after it: front's opens, tasks
// (drained at stop) and cleanups may all use back, and every one of back's
// resources closes after every one of front's.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8BackConn struct{ w resources.Worker }
type a8FrontConn struct {
	w    resources.Worker
	back *workerpool.Pool[*a8BackConn]
	rows []int
}

type a8Front struct {
	fx.In
	Conn *a8FrontConn
}

type a8Journal struct {
	mu     sync.Mutex
	events []string
}

func (j *a8Journal) add(f string, a ...any) {
	j.mu.Lock()
	j.events = append(j.events, fmt.Sprintf(f, a...))
	j.mu.Unlock()
}

func TestAttack8PoolBuiltFromAPool(t *testing.T) {
	for _, guard := range []bool{false, true} {
		t.Run(fmt.Sprintf("guard=%v", guard), func(t *testing.T) {
			j := &a8Journal{}
			var flushed atomic.Int64 // rows written to back by front's cleanups
			var backRan atomic.Int64
			rec := fxpooltest.NewRecorder()
			var front *workerpool.Pool[a8Front]
			opts := []fx.Option{
				fxpool.Module,
				fx.StopTimeout(10 * time.Second),
				workerpool.Provide[*a8BackConn]("a8back",
					workerpool.Workers(2), rec.Option(),
					workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*a8BackConn, func(), error) {
						j.add("open back w%d", w.ID)
						return &a8BackConn{w}, func() { j.add("close back w%d", w.ID) }, nil
					})),
				),
				workerpool.Provide[a8Front]("a8front",
					workerpool.Workers(3), workerpool.QueueSize(64), rec.Option(),
					workerpool.Resources(resources.PerWorker(func(ctx context.Context, back *workerpool.Pool[*a8BackConn], w resources.Worker) (*a8FrontConn, func(context.Context) error, error) {
						// the open uses back: it must have started
						if err := back.Do(ctx, func(context.Context, *a8BackConn) error { backRan.Add(1); return nil }); err != nil {
							return nil, nil, fmt.Errorf("front w%d open: back.Do: %w", w.ID, err)
						}
						j.add("open front w%d", w.ID)
						c := &a8FrontConn{w: w, back: back}
						return c, func(ctx context.Context) error {
							n := len(c.rows)
							err := back.Do(ctx, func(context.Context, *a8BackConn) error {
								backRan.Add(1)
								flushed.Add(int64(n))
								return nil
							})
							j.add("close front w%d", w.ID)
							if err != nil {
								return fmt.Errorf("front w%d flush: %w", w.ID, err)
							}
							return nil
						}, nil
					})),
				),
				fx.Populate(&front),
			}
			if guard {
				opts = append(opts, workerpool.StopGuard())
			}
			app := fxpooltest.New(t, opts...)
			app.RequireStart()

			// load: tasks on front that each go through back, queued deep
			// when the stop begins (Drain: every accepted one runs).
			var accepted, ran atomic.Int64
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						err := front.Go(context.Background(), func(ctx context.Context, d a8Front) error {
							if err := d.Conn.back.Do(ctx, func(context.Context, *a8BackConn) error {
								backRan.Add(1)
								return nil
							}); err != nil {
								t.Errorf("front task %d/%d: back.Do = %v", g, i, err)
								return err
							}
							d.Conn.rows = append(d.Conn.rows, i)
							ran.Add(1)
							return nil
						})
						if errors.Is(err, workerpool.ErrClosed) {
							return
						}
						if err != nil {
							t.Errorf("front.Go: %v", err)
							return
						}
						accepted.Add(1)
					}
				}()
			}
			time.Sleep(5 * time.Millisecond)
			app.RequireStop()
			wg.Wait()
			if ran.Load() != accepted.Load() {
				t.Errorf("Drain: %d front tasks accepted, %d ran", accepted.Load(), ran.Load())
			}
			if flushed.Load() != ran.Load() {
				t.Errorf("front's cleanups flushed %d rows through back, want %d", flushed.Load(), ran.Load())
			}
			rec.Verify(t)
			j.mu.Lock()
			defer j.mu.Unlock()
			lastFront, firstBackClose := -1, len(j.events)
			for i, e := range j.events {
				var k string
				var id int
				fmt.Sscanf(e, "close %s w%d", &k, &id)
				if k == "front" {
					lastFront = i
				}
				if k == "back" && i < firstBackClose {
					firstBackClose = i
				}
			}
			if lastFront > firstBackClose {
				t.Errorf("back closed a worker (event %d) before front's last close (event %d): %v", firstBackClose, lastFront, j.events)
			}
		})
	}
}
