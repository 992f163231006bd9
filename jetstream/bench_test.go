package jetstream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// benchWorkers is the size of the pool of the benchmarks; the window of
// both sides is that pool's capacity.
const benchWorkers = 4

// A benchSide consumes the n messages published to the stream of js and
// returns once every one is handled and its ack sent; it also stops what it
// started, outside the time measured.
type benchSide func(b *testing.B, js natsjs.JetStream, n int) (took time.Duration, stop func())

// poolSide: the consumer of this package, feeding a pool whose handler
// does nothing.
func poolSide(b *testing.B, js natsjs.JetStream, n int) (time.Duration, func()) {
	pool := startPool(b, benchWorkers)
	var handled atomic.Int64
	all := make(chan struct{})
	began := time.Now()
	c, err := jetstream.Start(b.Context(), js, pool, testStream, testConsumer, ids(),
		func(context.Context, worker, int) error {
			if handled.Add(1) == int64(n) {
				close(all)
			}
			return nil
		})
	if err != nil {
		b.Fatal(err)
	}
	<-all
	took := time.Since(began)
	return took, func() {
		if err := c.Stop(context.Background()); err != nil {
			b.Error(err)
		}
	}
}

// fetchSide: a bare loop of nats.go that fetches the same window, decodes
// each message and acks it as it comes.
func fetchSide(b *testing.B, js natsjs.JetStream, n int) (time.Duration, func()) {
	window := startPool(b, benchWorkers).Capacity().InFlight()
	cons, err := js.Consumer(b.Context(), testStream, testConsumer)
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	for done := 0; done < n; {
		batch, err := cons.Fetch(min(window, n-done), natsjs.FetchMaxWait(2*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for msg := range batch.Messages() {
			if _, err := ids()(msg.Data()); err != nil {
				b.Fatal(err)
			}
			_ = msg.Ack()
			done++
		}
	}
	return time.Since(began), func() {}
}

// runSide runs one side on a fresh embedded server with n messages in its
// stream, and returns its messages per second and the CPU time of the
// whole process (server included) per message, 0 if unknown.
func runSide(b *testing.B, side benchSide, n int) (perSec, cpuPerMsg float64) {
	srv := startServer(b, b.TempDir())
	conn := dial(b, srv)
	js := conn.JetStream()
	setupStream(b, js, 30*time.Second, -1)
	publish(b, js, 0, n)
	cpu := processCPU()
	took, stop := side(b, js, n)
	if cpu > 0 {
		cpuPerMsg = float64(processCPU()-cpu) / float64(n)
	}
	stop()
	return float64(n) / took.Seconds(), cpuPerMsg
}

// BenchmarkConsume: messages per second from the embedded server through a
// pool of 4 workers whose handler does nothing (pool), and through a bare
// fetch loop with the same window (fetch). Each side runs on its own
// server; use BenchmarkConsumeAB for the ratio of the two.
func BenchmarkConsume(b *testing.B) {
	for _, s := range []struct {
		name string
		side benchSide
	}{{"pool", poolSide}, {"fetch", fetchSide}} {
		b.Run(s.name, func(b *testing.B) {
			b.StopTimer()
			perSec, cpu := runSide(b, s.side, b.N)
			b.ReportMetric(perSec, "msgs/s")
			b.ReportMetric(cpu, "cpu-ns/msg")
			b.ReportMetric(0, "ns/op")
		})
	}
}

var abRound atomic.Int64

// BenchmarkConsumeAB runs both sides of [BenchmarkConsume] in one round,
// b.N messages each, in an order that alternates from round to round, and
// reports the pool's throughput as a fraction of the bare fetch loop's
// (pool/fetch). Run it with -count for several rounds.
func BenchmarkConsumeAB(b *testing.B) {
	b.StopTimer()
	var poolPerSec, fetchPerSec, poolCPU, fetchCPU float64
	if abRound.Add(1)%2 == 0 {
		poolPerSec, poolCPU = runSide(b, poolSide, b.N)
		fetchPerSec, fetchCPU = runSide(b, fetchSide, b.N)
	} else {
		fetchPerSec, fetchCPU = runSide(b, fetchSide, b.N)
		poolPerSec, poolCPU = runSide(b, poolSide, b.N)
	}
	b.ReportMetric(poolPerSec, "pool-msgs/s")
	b.ReportMetric(fetchPerSec, "fetch-msgs/s")
	b.ReportMetric(poolPerSec/fetchPerSec, "pool/fetch")
	b.ReportMetric(poolCPU, "pool-cpu-ns/msg")
	b.ReportMetric(fetchCPU, "fetch-cpu-ns/msg")
	b.ReportMetric(0, "ns/op")
}
