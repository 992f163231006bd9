package workerpool_test

// Round 8: ants' TestPoolTuneScaleUp — submitters blocked on a full pool are
// let through when Resize adds a worker, while the first tasks still block;
// and TryGo, refused before, is taken once the added worker is open.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack8ResizeUpUnblocksParkedSubmitters(t *testing.T) {
	for _, q := range []int{0, 1, 3} {
		for _, api := range []string{"Go", "Do", "Submit", "Group"} {
			t.Run(fmt.Sprintf("queue=%d/%s", q, api), func(t *testing.T) {
				p, _ := atkStart[W](t, fmt.Sprintf("a8tune%d%s", q, api), workerpool.Workers(2), workerpool.QueueSize(q))
				release := atkBlock(t, p, 2)
				defer release()
				// fill the queue
				for i := range q {
					if !p.TryGo(func(context.Context, W) error { return nil }) {
						t.Fatalf("TryGo %d of a queue of %d refused", i, q)
					}
				}
				if p.TryGo(func(context.Context, W) error { return nil }) {
					t.Fatal("TryGo on a full pool accepted")
				}
				ran := make(chan struct{})
				submitted := make(chan error, 1)
				task := func(context.Context, W) error { close(ran); return nil }
				go func() {
					ctx := context.Background()
					switch api {
					case "Go":
						submitted <- p.Go(ctx, task)
					case "Do":
						submitted <- p.Do(ctx, task)
					case "Submit":
						f, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) { return 1, task(ctx, w) })
						if err == nil {
							_, err = f.Wait(ctx)
						}
						submitted <- err
					case "Group":
						g, _ := p.Group(ctx)
						g.Go(task)
						submitted <- g.Wait()
					}
				}()
				select {
				case err := <-submitted:
					t.Fatalf("%s on a full pool returned %v before any room", api, err)
				case <-time.After(30 * time.Millisecond):
				}
				if err := p.Resize(3); err != nil {
					t.Fatal(err)
				}
				// the added worker drains the queue and takes the parked task
				select {
				case <-ran:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: after Resize(3) the parked task never ran; Stats %+v, Capacity %+v", api, p.Stats(), p.Capacity())
				}
				select {
				case err := <-submitted:
					if err != nil {
						t.Fatalf("%s = %v", api, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s never returned after its task ran", api)
				}
				// and once idle, the third worker takes TryGo
				atkPoll(t, "third worker idle", 10*time.Second, func() bool {
					s := p.Stats()
					return s.Workers == 3 && s.Busy == 2 && s.Queued == 0
				})
				ok := make(chan struct{})
				accepted := false
				for try := range 4 {
					if p.TryGo(func(context.Context, W) error { close(ok); return nil }) {
						accepted = true
						break
					}
					// as TestAttack6_QueueZeroTryGoFindsWaitingWorker: a worker
					// on its way to wait may refuse once; not 4 times 50ms apart
					t.Logf("TryGo refused (try %d), Stats %+v", try, p.Stats())
					time.Sleep(50 * time.Millisecond)
				}
				if !accepted {
					t.Fatalf("TryGo refused 4 times, 50ms apart, with an idle third worker and nothing queued (Stats %+v)", p.Stats())
				}
				atkWait(t, "TryGo task", 10*time.Second, ok)
			})
		}
	}
}
