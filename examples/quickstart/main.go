// Command quickstart is the quick start of fxpool's README: two workers,
// each with its own session on an app-scoped store, opened when the app
// starts and closed, in reverse order, before the store.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Store is app-scoped: one for the whole app, closed by its own OnStop.
type Store struct{ out io.Writer }

func NewStore(lc fx.Lifecycle, out io.Writer) *Store {
	lc.Append(fx.StopHook(func() { fmt.Fprintln(out, "store closed") }))
	return &Store{out: out}
}

// Session is per worker: each worker opens its own and closes it on stop.
type Session struct {
	store  *Store
	worker int
}

func (s *Session) Close() error {
	fmt.Fprintf(s.store.out, "session %d closed\n", s.worker)
	return nil
}

// Deps is what every task receives: its worker's own session.
type Deps struct {
	fx.In
	Session *Session
	Worker  resources.Worker
}

func main() {
	if err := run(newApp(os.Stdout)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run starts the app, waits for a signal or a Shutdown, and stops it, as
// app.Run does; but it returns why a start failed, where app.Run would exit
// the process with fx.NopLogger's silence.
func run(app *fx.App) error {
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return err
	}
	sig := <-app.Wait()
	stopCtx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		return err
	}
	if sig.ExitCode != 0 {
		return fmt.Errorf("quickstart: shut down with exit code %d", sig.ExitCode)
	}
	return nil
}

func newApp(out io.Writer) *fx.App {
	return fx.New(
		fx.NopLogger,
		fxpool.Module,
		fx.Supply(fx.Annotate(out, fx.As(new(io.Writer)))),
		fx.Provide(NewStore),
		workerpool.Provide[Deps]("greeter",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, s *Store, w resources.Worker) (*Session, error) {
					return &Session{store: s, worker: w.ID}, nil
				}),
			),
		),
		fx.Invoke(greet),
	)
}

// greet runs once the app has started: it submits tasks, waits for them,
// and stops the app.
func greet(lc fx.Lifecycle, p *workerpool.Pool[Deps], sd fx.Shutdowner, out io.Writer) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		for _, name := range []string{"Ada", "Grace", "Barbara"} {
			err := p.Do(ctx, func(ctx context.Context, d Deps) error {
				fmt.Fprintf(out, "hello %s\n", name)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return sd.Shutdown()
	}))
}
