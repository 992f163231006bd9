package fxpooltest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// exampleT stands in for the *testing.T of a test: it prints what fails.
type exampleT struct{}

func (exampleT) Logf(string, ...any)               {}
func (exampleT) Errorf(format string, args ...any) { fmt.Printf("error: "+format+"\n", args...) }
func (exampleT) FailNow()                          { panic("FailNow") }

// Client is a per-worker resource: each worker opens its own, and the pool
// calls its Close method when the worker closes.
type Client struct{ server *Server }

func (c *Client) Close() error { return nil }

// Server is app-scoped: one for the app, stopped by its own OnStop hook.
type Server struct{}

func openClient(s *Server) (*Client, error) { return &Client{s}, nil }

// countResources counts the opens and closes among events.
func countResources(events []workerpool.Event) (opened, failed, closed int) {
	for _, e := range events {
		switch e := e.(type) {
		case workerpool.ResourceOpened:
			if e.Err != nil {
				failed++
			} else {
				opened++
			}
		case workerpool.ResourceClosed:
			closed++
		}
	}
	return opened, failed, closed
}

// A test of an app's own pool: start it, use it, stop it, and check that
// every per-worker resource closed once, in order, before the app-scoped
// server, and that no goroutine outlived the app.
func Example() {
	t := exampleT{} // in a test: t is the *testing.T
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[*Client]
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()), // the pools log to the app's *zap.Logger
		fx.Provide(func(lc fx.Lifecycle) *Server {
			lc.Append(fx.StopHook(func() { rec.Mark("*Server") }))
			return &Server{}
		}),
		workerpool.Provide[*Client]("clients",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(openClient)),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()

	err := pool.Do(context.Background(), func(_ context.Context, c *Client) error { return nil })
	fmt.Println("task:", err)

	app.RequireStop() // then checks for leaked goroutines
	rec.Verify(t)     // reports every broken guarantee through t.Errorf
	opened, _, closed := countResources(rec.Events())
	fmt.Printf("opened %d, closed %d\n", opened, closed)
	// Output:
	// task: <nil>
	// opened 2, closed 2
}

// The second open of a Client fails: the pool's start fails, and the
// Client that had opened is closed by the rollback.
func ExampleInject() {
	t := exampleT{}
	rec := fxpooltest.NewRecorder()
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop(), &Server{}),
		workerpool.Provide[*Client]("flaky",
			workerpool.Workers(2),
			workerpool.StartConcurrency(1), // one worker after the other
			workerpool.Resources(resources.PerWorker(
				fxpooltest.Inject(openClient, fxpooltest.OnOpen(2, fxpooltest.Fail)),
			)),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[*Client]) {}),
	)

	err := app.Start(context.Background())
	fmt.Println("start failed with the fault:", errors.Is(err, fxpooltest.ErrInjected))

	app.VerifyNoLeaks()
	rec.Verify(t)
	opened, failed, closed := countResources(rec.Events())
	fmt.Printf("opened %d, failed %d, closed %d\n", opened, failed, closed)
	// Output:
	// start failed with the fault: true
	// opened 1, failed 1, closed 1
}

// Verify reports each broken guarantee: here a worker closed its Conn
// before the Batch that was opened on it.
func ExampleRecorder_Verify() {
	rec := fxpooltest.NewRecorder()
	w := resources.Worker{Pool: "db", ID: 0, Generation: 0}
	rec.Record(workerpool.ResourceOpened{Resource: "*Conn", Worker: w})
	rec.Record(workerpool.ResourceOpened{Resource: "*Batch", Worker: w})
	rec.Record(workerpool.ResourceClosed{Resource: "*Conn", Worker: w, Closed: true})
	rec.Record(workerpool.ResourceClosed{Resource: "*Batch", Worker: w, Closed: true})
	rec.Verify(exampleT{})
	// Output:
	// error: fxpooltest: pool "db" worker 0 generation 0: resource "*Conn" closed before "*Batch", which opened after it
}

// A worker whose resources are older than MaxWorkerAge rebuilds them
// before its next task; the clock moves only when the test says so.
func ExampleClock() {
	t := exampleT{}
	clock := fxpooltest.NewClock()
	var pool *workerpool.Pool[resources.Worker]
	app := fxpooltest.New(t,
		fx.Supply(zap.NewNop()),
		workerpool.Provide[resources.Worker]("aging",
			workerpool.Workers(1),
			workerpool.MaxWorkerAge(time.Hour),
			clock.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	defer app.RequireStop()

	generation := func() int {
		var gen int
		_ = pool.Do(context.Background(), func(_ context.Context, w resources.Worker) error {
			gen = w.Generation
			return nil
		})
		return gen
	}
	fmt.Println("generation", generation())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = clock.WaitTimers(ctx, 1) // the worker's age timer
	clock.Add(time.Hour)
	fmt.Println("an hour later, generation", generation())
	// Output:
	// generation 0
	// an hour later, generation 1
}
