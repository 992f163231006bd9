package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
)

type Order struct {
	ID    int `json:"id"`
	Items int `json:"items"`
}

// A pool of two workers fed by a JetStream consumer on an embedded server:
// each order is handled on a worker, with that worker's resources, and
// acked once its handler returned nil.
func ExampleConsume() {
	dir, _ := os.MkdirTemp("", "orders")
	defer os.RemoveAll(dir)

	var mu sync.Mutex
	total := 0
	var conn *jetstream.Conn
	app := fx.New(
		fx.NopLogger,
		fxpool.Module,
		embedded.Module(dir), // in-process, no listener; its store in dir
		jetstream.Connect(jetstream.Embedded),
		// The stream and its consumer, before the consumer starts.
		fx.Invoke(func(lc fx.Lifecycle, c *jetstream.Conn) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				js := c.JetStream()
				if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
					return err
				}
				_, err := js.CreateConsumer(ctx, "ORDERS", natsjs.ConsumerConfig{
					Durable:    "billing",
					AckPolicy:  natsjs.AckExplicitPolicy,
					MaxDeliver: -1, // count attempts with jetstream.MaxAttempts instead
				})
				return err
			}))
		}),
		workerpool.Provide[resources.Worker]("billing", workerpool.Workers(2)),
		jetstream.Consume("ORDERS", "billing", jetstream.JSON[Order](),
			func(ctx context.Context, w resources.Worker, o Order) error {
				mu.Lock()
				defer mu.Unlock()
				total += o.Items
				return nil
			},
			jetstream.MaxAttempts(5),
		),
		fx.Populate(&conn),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for i := 1; i <= 10; i++ {
		if _, err := conn.JetStream().Publish(ctx, "orders.new", fmt.Appendf(nil, `{"id": %d, "items": %d}`, i, i)); err != nil {
			fmt.Println(err)
		}
	}
	for {
		mu.Lock()
		t := total
		mu.Unlock()
		if t == 55 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The consumer stops first, and acks all it handled; then the pool,
	// the connection, and last the embedded server.
	if err := app.Stop(stopCtx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("items:", total)
	// Output: items: 55
}
