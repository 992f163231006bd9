package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

var errBroken = fmt.Errorf("bench: connection lost: %w", resources.ErrBroken)

// BenchmarkRestart: the cost of restarts. One task in a hundred returns an
// error wrapping resources.ErrBroken, so its worker closes its [Conn] and
// opens a new one; compared with the same pool where no task fails
// (broken=0%). Fire-and-forget, then wait for all. fxpool only: no peer
// rebuilds a worker's resources.
func BenchmarkRestart(b *testing.B) {
	for _, w := range widths {
		b.Run(fmt.Sprintf("W=%d", w), func(b *testing.B) {
			b.Run("task=trivial", func(b *testing.B) {
				for _, every := range []int{0, 100} {
					name := "broken=0%"
					if every > 0 {
						name = fmt.Sprintf("broken=%d%%", 100/every)
					}
					b.Run(name, func(b *testing.B) {
						b.Run("impl=fxpool", func(b *testing.B) {
							b.ReportAllocs()
							restartFxpool(b, w, every)
						})
					})
				}
			})
		})
	}
}

// restartFxpool fails every every-th task with errBroken; never if every
// is 0.
func restartFxpool(b *testing.B, w, every int) {
	p, stop := startFxpool(b, w, workerpool.ErrorHandler(func(error) {}))
	defer untimed(b, stop)
	ctx := context.Background()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		err := p.Go(ctx, func(_ context.Context, c *Conn) error {
			c.Use()
			Sink(uint64(i))
			pending.Done()
			if every > 0 && i%every == 0 {
				return errBroken
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}
