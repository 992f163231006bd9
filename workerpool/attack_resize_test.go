package workerpool_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// Resize under load: grow/shrink repeatedly while tasks run; every task
// accepted runs; each resource opened is closed exactly once, in reverse
// order; Stats.Workers converges to n.
func TestAttackResizeUnderLoad(t *testing.T) {
	l := newLedger()
	p, _ := atkStart[AB](t, "resize", workerpool.Workers(2), workerpool.QueueSize(16), abResources(l))
	if err := p.Resize(0); err == nil {
		t.Error("Resize(0) = nil")
	}
	if err := p.Resize(-3); err == nil {
		t.Error("Resize(-3) = nil")
	}
	stop := make(chan struct{})
	var submitted, ran, badRes atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := p.Go(context.Background(), func(ctx context.Context, d AB) error {
					if d.B == nil || d.B.a == nil || d.B.w != d.W || d.B.a.w != d.W {
						badRes.Add(1)
					}
					time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
					ran.Add(1)
					return nil
				})
				if err != nil {
					t.Errorf("Go during resizes: %v", err)
					return
				}
				submitted.Add(1)
			}
		}()
	}
	sizes := []int{5, 1, 4, 2, 7, 1, 3, 1, 6, 2}
	for _, n := range sizes {
		if err := p.Resize(n); err != nil {
			t.Fatalf("Resize(%d): %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// concurrent resizes: last call wins
	var rwg sync.WaitGroup
	for i := range 8 {
		rwg.Add(1)
		go func() { defer rwg.Done(); _ = p.Resize(1 + i%4) }()
	}
	rwg.Wait()
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "Workers converges to 3", 5*time.Second, func() bool {
		s := p.Stats()
		return s.Workers == 3 && s.Opening == 0 && s.Closing == 0
	})
	if c := p.Capacity(); c.Workers != 3 {
		t.Errorf("Capacity.Workers = %d, want 3", c.Workers)
	}
	close(stop)
	wg.Wait()
	// open resources right now: 3 workers x 2
	o, c := l.counts()
	if o-c != 6 {
		t.Errorf("open-closed = %d, want 6 (3 workers x 2 resources)", o-c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Stop(ctx, workerpool.Drain); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if ran.Load() != submitted.Load() {
		t.Errorf("ran %d of %d submitted", ran.Load(), submitted.Load())
	}
	if badRes.Load() != 0 {
		t.Errorf("%d tasks saw another worker's / nil resources", badRes.Load())
	}
	l.check(t)
	o, c = l.counts()
	t.Logf("opens %d closes %d, tasks %d", o, c, ran.Load())
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize after stop = %v, want ErrClosed", err)
	}
}

// Shrinking retires a busy worker only after its task: its resources
// stay open while the task runs.
func TestAttackResizeShrinkBusyKeepsResources(t *testing.T) {
	l := newLedger()
	p, _ := atkStart[AB](t, "shrink", workerpool.Workers(3), abResources(l))
	hold := make(chan struct{})
	var wg sync.WaitGroup
	var closedUnderTask atomic.Int32
	started := make(chan W, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Do(context.Background(), func(ctx context.Context, d AB) error {
				started <- d.W
				<-hold
				// my resources must still be open
				l.mu.Lock()
				key := "A/w" + itoaN(d.W.ID) + "/g" + itoaN(d.W.Generation)
				if l.closed[key] > 0 {
					closedUnderTask.Add(1)
				}
				l.mu.Unlock()
				return nil
			})
		}()
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("tasks did not start")
		}
	}
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if o, c := l.counts(); c != 0 {
		t.Errorf("Resize(1) closed %d of %d resources while all workers were busy", c, o)
	}
	close(hold)
	wg.Wait()
	atkPoll(t, "1 worker", 5*time.Second, func() bool { return p.Stats().Workers == 1 })
	if closedUnderTask.Load() != 0 {
		t.Error("a worker's resources closed under its running task")
	}
	atkPoll(t, "closes", 5*time.Second, func() bool { _, c := l.counts(); return c == 4 })
}

func itoaN(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

// Resize before start fails with ErrNotStarted.
func TestAttackResizeBeforeStart(t *testing.T) {
	var p *workerpool.Pool[W]
	app := newAtkApp(t, &p, "rbs", workerpool.Workers(1))
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Resize before start = %v, want ErrNotStarted", err)
	}
	if c := p.Capacity(); c.Workers != 1 && c.Workers != 0 {
		t.Errorf("Capacity before start = %+v", c)
	}
	_ = app
}
