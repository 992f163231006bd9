package workerpool_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Scratch is a per-worker buffer: reused by every task of its worker, never
// shared with another.
type Scratch struct{ buf []byte }

func ExampleProvide() {
	var pool *workerpool.Pool[*Scratch]
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[*Scratch]("upper",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Scratch, func()) {
				return &Scratch{buf: make([]byte, 0, 64)}, func() {}
			})),
		),
		fx.Populate(&pool),
	)
	// The constructor above returns (T, func()): not a form fx knows.
	fmt.Println(app.Err() != nil)

	app = fx.New(
		fx.NopLogger,
		workerpool.Provide[*Scratch]("upper",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func() *Scratch {
				return &Scratch{buf: make([]byte, 0, 64)}
			})),
		),
		fx.Populate(&pool),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	err := pool.Do(ctx, func(_ context.Context, s *Scratch) error {
		s.buf = append(s.buf[:0], "hello"...)
		fmt.Println(strings.ToUpper(string(s.buf)))
		return nil
	})
	fmt.Println(err)
	// Output:
	// true
	// HELLO
	// <nil>
}

func ExampleSubmit() {
	var pool *workerpool.Pool[resources.Worker]
	app := fx.New(fx.NopLogger, workerpool.Provide[resources.Worker]("ids", workerpool.Workers(1)), fx.Populate(&pool))
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	f, err := workerpool.Submit(ctx, pool, func(_ context.Context, w resources.Worker) (string, error) {
		return fmt.Sprintf("ran on worker %d of pool %s", w.ID, w.Pool), nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Wait(ctx))
	// Output: ran on worker 0 of pool ids <nil>
}

func ExampleMap() {
	var pool *workerpool.Pool[*Scratch]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*Scratch]("crc", workerpool.Workers(4),
			workerpool.Resources(resources.PerWorker(func() *Scratch { return &Scratch{} }))),
		fx.Populate(&pool),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)

	words := slices.Values([]string{"alpha", "beta", "gamma", "delta"})
	crc := func(_ context.Context, s *Scratch, w string) (string, error) {
		s.buf = append(s.buf[:0], w...)
		return fmt.Sprintf("%s %08x", w, crc32.ChecksumIEEE(s.buf)), nil
	}
	// Results come in input order, whichever worker finished first.
	for line, err := range workerpool.Map(ctx, pool, words, crc) {
		fmt.Println(line, err)
	}
	// Output:
	// alpha d0e0396a <nil>
	// beta 8f910463 <nil>
	// gamma c443d071 <nil>
	// delta 9643fed9 <nil>
}
