package resources_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Conn has a Close method: it is closed automatically.
type Conn struct{ worker int }

func (c *Conn) Close() error {
	fmt.Printf("close conn of worker %d\n", c.worker)
	return nil
}

// Batch has an explicit cleanup, its commit.
type Batch struct{ conn *Conn }

// Declare a worker's resources for a pool: each worker opens its own, in
// dependency order, when the app starts, and closes them in reverse order
// when it stops.
func ExamplePerWorker() {
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Batch]("indexer",
			workerpool.Workers(1),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, c *Conn) (*Batch, func(context.Context) error, error) {
					fmt.Println("begin batch")
					commit := func(context.Context) error {
						fmt.Println("commit batch")
						return nil
					}
					return &Batch{conn: c}, commit, nil
				}),
				resources.PerWorker(func(w resources.Worker) (*Conn, error) {
					fmt.Printf("open conn of worker %d of %s\n", w.ID, w.Pool)
					return &Conn{worker: w.ID}, nil
				}),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*Batch]) {}),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Stop:", app.Stop(ctx))
	// Output:
	// open conn of worker 0 of indexer
	// begin batch
	// commit batch
	// close conn of worker 0
	// Stop: <nil>
}

// A resource that does not open fails the start, which closes what had
// opened; the error names the resource that failed.
func ExampleOpenError() {
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Batch]("indexer",
			workerpool.Workers(1),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) *Conn {
					fmt.Println("open conn")
					return &Conn{worker: w.ID}
				}),
				resources.PerWorker(func(*Conn) (*Batch, error) {
					return nil, errors.New("disk full")
				}, resources.Name("batch")),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*Batch]) {}),
	)
	err := app.Start(context.Background())
	var oe *resources.OpenError
	fmt.Println(errors.As(err, &oe), oe.Resource, oe.Err)
	// Output:
	// open conn
	// close conn of worker 0
	// true batch disk full
}
