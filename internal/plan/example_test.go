package plan_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/resources"
)

// Conn has a Close method: it is closed automatically.
type Conn struct{ worker int }

func (c *Conn) Close() error {
	fmt.Printf("close conn of worker %d\n", c.worker)
	return nil
}

// Batch has an explicit cleanup, its commit.
type Batch struct{ conn *Conn }

// Plan a worker's resources for the task parameter, and open and close one
// worker's scope: what package workerpool does for each worker.
func ExampleNew() {
	p, err := plan.New[*Batch](
		resources.PerWorker(func(ctx context.Context, c *Conn) (*Batch, func(context.Context) error, error) {
			fmt.Println("begin batch")
			commit := func(context.Context) error {
				fmt.Println("commit batch")
				return nil
			}
			return &Batch{conn: c}, commit, nil
		}),
		resources.PerWorker(func(w resources.Worker) (*Conn, error) {
			fmt.Printf("open conn of worker %d\n", w.ID)
			return &Conn{worker: w.ID}, nil
		}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("opens:", p.Resources())

	ctx := context.Background()
	scope, err := p.Open(ctx, resources.Worker{Pool: "indexer", ID: 3}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("task runs on the conn of worker", scope.Value().conn.worker)
	fmt.Println("Close:", scope.Close(ctx))
	// Output:
	// opens: [*plan_test.Conn *plan_test.Batch]
	// open conn of worker 3
	// begin batch
	// task runs on the conn of worker 3
	// commit batch
	// close conn of worker 3
	// Close: <nil>
}

// Values that no per-worker constructor returns come from the fx graph:
// Needs says which, and Open takes one value of each Need.In.
func ExamplePlan_Open() {
	type Pool struct{ dsn string }
	p, err := plan.New[*Conn](
		resources.PerWorker(func(p *Pool, w resources.Worker) *Conn {
			fmt.Printf("open conn of worker %d from %s\n", w.ID, p.dsn)
			return &Conn{worker: w.ID}
		}, resources.Name("conn")),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	need := p.Needs()[0]
	ext := reflect.New(need.In).Elem()
	ext.Field(1).Set(reflect.ValueOf(&Pool{dsn: "db.sqlite"}))
	fmt.Println("from fx:", ext.Field(1).Type())

	ctx := context.Background()
	scope, err := p.Open(ctx, resources.Worker{ID: 1}, []reflect.Value{ext})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = scope.Close(ctx)
	// Output:
	// from fx: *plan_test.Pool
	// open conn of worker 1 from db.sqlite
	// close conn of worker 1
}

// A failed open closes what had opened, and names the resource that failed.
func ExamplePlan_Open_rollback() {
	p, _ := plan.New[*Batch](
		resources.PerWorker(func(w resources.Worker) *Conn {
			fmt.Println("open conn")
			return &Conn{worker: w.ID}
		}),
		resources.PerWorker(func(*Conn) (*Batch, error) {
			return nil, errors.New("disk full")
		}, resources.Name("batch")),
	)
	_, err := p.Open(context.Background(), resources.Worker{ID: 2}, nil)
	var oe *resources.OpenError
	fmt.Println(errors.As(err, &oe), oe.Resource, oe.Err)
	// Output:
	// open conn
	// close conn of worker 2
	// true batch disk full
}
