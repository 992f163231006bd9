package jetstream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// BenchmarkConsume: messages per second from the embedded server through
// a pool of 4 workers whose handler does nothing, against a bare fetch
// loop with the same window that acks each message as it comes. Both end
// when every message is acked.
func BenchmarkConsume(b *testing.B) {
	const workers = 4
	b.Run("pool", func(b *testing.B) {
		srv := startServer(b, b.TempDir())
		conn := dial(b, srv)
		js := conn.JetStream()
		setupStream(b, js, 30*time.Second, -1)
		publish(b, js, 0, b.N)
		pool := startPool(b, workers)
		var handled atomic.Int64
		b.ResetTimer()
		c, err := jetstream.Start(b.Context(), js, pool, testStream, testConsumer, ids(),
			func(context.Context, worker, int) error { handled.Add(1); return nil })
		if err != nil {
			b.Fatal(err)
		}
		for handled.Load() < int64(b.N) {
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		if err := c.Stop(b.Context()); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("fetch", func(b *testing.B) {
		srv := startServer(b, b.TempDir())
		conn := dial(b, srv)
		js := conn.JetStream()
		setupStream(b, js, 30*time.Second, -1)
		publish(b, js, 0, b.N)
		window := startPool(b, workers).Capacity().InFlight()
		cons, err := js.Consumer(b.Context(), testStream, testConsumer)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for n := 0; n < b.N; {
			batch, err := cons.Fetch(min(window, b.N-n), natsjs.FetchMaxWait(2*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			for msg := range batch.Messages() {
				if _, err := ids()(msg.Data()); err != nil {
					b.Fatal(err)
				}
				_ = msg.Ack()
				n++
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
