package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Fetcher is a per-worker client.
type Fetcher struct{ fetched *atomic.Int32 }

func newFetcherApp(fetched *atomic.Int32, pool **workerpool.Pool[*Fetcher]) *fx.App {
	return fx.New(
		fx.NopLogger,
		workerpool.Provide[*Fetcher]("fetch",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func() *Fetcher { return &Fetcher{fetched: fetched} })),
		),
		fx.Populate(pool),
	)
}

// A group runs a set of tasks on the pool's workers: the first failure
// cancels the others, and Wait returns it.
func ExamplePool_Group() {
	var (
		fetched atomic.Int32
		pool    *workerpool.Pool[*Fetcher]
	)
	app := newFetcherApp(&fetched, &pool)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	g, _ := pool.Group(ctx)
	for _, url := range []string{"a", "b", "c"} {
		g.Go(func(ctx context.Context, f *Fetcher) error {
			f.fetched.Add(1)
			return nil
		})
		_ = url
	}
	fmt.Println(g.Wait(), fetched.Load())

	g, _ = pool.Group(ctx)
	g.Go(func(context.Context, *Fetcher) error { return errors.New("b: 404") })
	g.Go(func(ctx context.Context, _ *Fetcher) error {
		<-ctx.Done() // cancelled by the first failure
		return ctx.Err()
	})
	fmt.Println(g.Wait())
	// Output:
	// <nil> 3
	// b: 404
}

type requestID struct{}

// The task's context carries the submitter's values; for Do it also ends
// when the submitter's context does.
func ExamplePool_Do_context() {
	var (
		fetched atomic.Int32
		pool    *workerpool.Pool[*Fetcher]
	)
	app := newFetcherApp(&fetched, &pool)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	req, cancel := context.WithCancelCause(context.WithValue(ctx, requestID{}, "req-7"))
	seen := make(chan error, 1)
	returned := make(chan struct{})
	err := pool.Do(req, func(ctx context.Context, _ *Fetcher) error {
		fmt.Println("serving", ctx.Value(requestID{}))
		cancel(errors.New("client went away"))
		<-ctx.Done() // the submitter's cancellation reaches the task
		seen <- context.Cause(ctx)
		<-returned
		return nil
	})
	close(returned)
	fmt.Println(err)    // Do returns as soon as its context ends
	fmt.Println(<-seen) // the task saw why
	// Output:
	// serving req-7
	// context canceled
	// client went away
}

// A feeder learns what became of each task it submitted, to ack, retry or
// leave each message.
func ExamplePool_GoReport() {
	var (
		fetched atomic.Int32
		pool    *workerpool.Pool[*Fetcher]
	)
	app := newFetcherApp(&fetched, &pool)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	outcomes := make(chan workerpool.Outcome, 3)
	report := func(o workerpool.Outcome, err error) { outcomes <- o }
	_ = pool.GoReport(ctx, func(context.Context, *Fetcher) error { return nil }, report)
	_ = pool.GoReport(ctx, func(context.Context, *Fetcher) error { return errors.New("retry") }, report)
	_ = pool.GoReport(ctx, func(context.Context, *Fetcher) error { panic("poison") }, report)
	seen := map[workerpool.Outcome]bool{}
	for range 3 {
		seen[<-outcomes] = true
	}
	fmt.Println(seen[workerpool.Succeeded], seen[workerpool.Failed], seen[workerpool.Panicked])
	// Output:
	// true true true
}
