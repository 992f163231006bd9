package fxpooltest_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// The resources of a small app: an app-scoped DB, and per worker a Conn
// (closed by its Close method) and a Batch on it (by an explicit cleanup).
type DB struct{ live atomic.Int64 } // live counts the per-worker resources open

type Conn struct {
	db     *DB
	closed atomic.Bool
}

func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return errors.New("conn closed twice")
	}
	c.db.live.Add(-1)
	return nil
}

type Batch struct{ conn *Conn }

type Deps struct {
	fx.In
	Conn  *Conn
	Batch *Batch
	W     resources.Worker
}

func openConn(db *DB) (*Conn, error) {
	db.live.Add(1)
	return &Conn{db: db}, nil
}

func openBatch(ctx context.Context, c *Conn) (*Batch, func(context.Context) error, error) {
	c.db.live.Add(1)
	return &Batch{c}, func(context.Context) error {
		if c.closed.Load() {
			return errors.New("batch committed after its conn closed")
		}
		c.db.live.Add(-1)
		return nil
	}, nil
}

// provideDB provides the app-scoped *DB, whose stop marks its close.
func provideDB(rec *fxpooltest.Recorder) fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) *DB {
		db := &DB{}
		lc.Append(fx.StopHook(func() { rec.Mark("*DB") }))
		return db
	})
}

func TestRecorderAcceptsARealPool(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[Deps]
	var db *DB
	app := newApp(t,
		provideDB(rec),
		workerpool.Provide[Deps]("app",
			workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(openConn), resources.PerWorker(openBatch)),
			rec.Option(),
		),
		fx.Populate(&pool, &db),
	).RequireStart()
	for range 5 {
		err := pool.Do(t.Context(), func(context.Context, Deps) error {
			return resources.ErrBroken // each task makes its worker rebuild
		})
		if !errors.Is(err, resources.ErrBroken) {
			t.Fatalf("Do = %v, want ErrBroken", err)
		}
	}
	app.RequireStop()
	rec.Verify(t)
	if n := db.live.Load(); n != 0 {
		t.Errorf("%d resources still open after the stop", n)
	}
	var opens, closes int
	for _, e := range rec.Events() {
		switch e.(type) {
		case workerpool.ResourceOpened:
			opens++
		case workerpool.ResourceClosed:
			closes++
		}
	}
	if want := 2 * (3 + 5); opens != want || closes != want {
		t.Errorf("recorded %d opens and %d closes, want %d of each", opens, closes, want)
	}
}

// The recorder must see a real app-scoped resource closed too early.
func TestRecorderReportsAnAppScopedCloseBeforeThePool(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	app := newApp(t,
		workerpool.Provide[*Conn]("early",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(openConn)),
			rec.Option(),
		),
		fx.Supply(&DB{}),
		fx.Invoke(func(*workerpool.Pool[*Conn]) {}),
		// Registered after the pool, so stopped before it: wrong on purpose.
		fx.Invoke(func(lc fx.Lifecycle) { lc.Append(fx.StopHook(func() { rec.Mark("late-db") })) }),
	).RequireStart()
	app.RequireStop()
	var ft fakeT
	rec.Verify(&ft)
	got := ft.errors()
	if len(got) != 1 || !strings.Contains(got[0], `app-scoped "late-db" closed before`) {
		t.Errorf("Verify reported %q, want one error about late-db", got)
	}
}

func TestInjectOnOpenRollsBackTheStart(t *testing.T) {
	tests := []struct {
		name    string
		give    fxpooltest.Kind
		wantErr error
	}{
		{"Fail", fxpooltest.Fail, fxpooltest.ErrInjected},
		{"Panic", fxpooltest.Panic, fxpooltest.ErrInjected},
		// The start gives up at its deadline, not when the hang ends.
		{"Hang", fxpooltest.Hang, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := fxpooltest.NewRecorder()
			var db *DB
			app := newApp(t,
				fx.StartTimeout(time.Second),
				provideDB(rec),
				workerpool.Provide[Deps]("app",
					workerpool.Workers(3),
					workerpool.StartConcurrency(1), // so that worker 1 opens the 2nd batch
					workerpool.Resources(
						resources.PerWorker(openConn),
						resources.PerWorker(fxpooltest.Inject(openBatch, fxpooltest.OnOpen(2, tt.give))),
					),
					rec.Option(),
				),
				fx.Populate(&db),
				fx.Invoke(func(*workerpool.Pool[Deps]) {}),
			)
			ctx, cancel := context.WithTimeout(t.Context(), app.StartTimeout())
			defer cancel()
			if err := app.Start(ctx); !errors.Is(err, tt.wantErr) {
				t.Errorf("Start = %v, want an error wrapping %v", err, tt.wantErr)
			}
			app.VerifyNoLeaks()
			rec.Verify(t)
			if n := db.live.Load(); n != 0 {
				t.Errorf("%d resources still open after the failed start", n)
			}
		})
	}
}

func TestInjectOnCloseStillClosesForReal(t *testing.T) {
	tests := []struct {
		name string
		give fxpooltest.Kind
	}{
		{"Fail", fxpooltest.Fail},
		{"Panic", fxpooltest.Panic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := fxpooltest.NewRecorder()
			var db *DB
			app := newApp(t,
				fx.StopTimeout(time.Second),
				provideDB(rec),
				workerpool.Provide[Deps]("app",
					workerpool.Workers(2),
					workerpool.Resources(
						resources.PerWorker(fxpooltest.Inject(openConn, fxpooltest.OnClose(1, tt.give))),
						resources.PerWorker(openBatch),
					),
					rec.Option(),
				),
				fx.Populate(&db),
				fx.Invoke(func(*workerpool.Pool[Deps]) {}),
			).RequireStart()
			ctx, cancel := context.WithTimeout(t.Context(), app.StopTimeout())
			defer cancel()
			err := app.Stop(ctx)
			if !errors.Is(err, fxpooltest.ErrInjected) {
				t.Errorf("Stop = %v, want an error wrapping ErrInjected", err)
			}
			app.VerifyNoLeaks()
			rec.Verify(t)
			if n := db.live.Load(); n != 0 {
				t.Errorf("%d resources still open after the stop", n)
			}
		})
	}
}

// A close that hangs until the stop's context ends makes the stop give up
// on it; it still closes once, for real, and its goroutine ends.
func TestInjectHangOnCloseIsReportedByTheStop(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	db := &DB{}
	app := newApp(t,
		fx.StopTimeout(500*time.Millisecond),
		fx.Supply(db),
		workerpool.Provide[Deps]("app",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(fxpooltest.Inject(openConn, fxpooltest.OnClose(1, fxpooltest.Hang))),
				resources.PerWorker(openBatch),
			),
			rec.Option(),
		),
		fx.Invoke(func(*workerpool.Pool[Deps]) {}),
	).RequireStart()
	ctx, cancel := context.WithTimeout(t.Context(), app.StopTimeout())
	defer cancel()
	if err := app.Stop(ctx); err == nil {
		t.Errorf("Stop = nil, want an error about the hung close")
	}
	app.VerifyNoLeaks()
	rec.Verify(t)
	if n := db.live.Load(); n != 0 {
		t.Errorf("%d resources still open after the stop", n)
	}
}

func TestAppReportsALeakedGoroutine(t *testing.T) {
	var ft fakeT
	app := fxpooltest.New(&ft)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		<-stop
	}()
	app.RequireStart().RequireStop()
	close(stop)
	<-done
	if got := ft.errors(); len(got) != 1 || !strings.Contains(got[0], "goroutines outlived the app") {
		t.Errorf("reported %q, want one leak", got)
	}
	if ft.failed {
		t.Errorf("RequireStop called FailNow after a clean stop")
	}
}

func TestNewFailsNowOnABadApp(t *testing.T) {
	var ft fakeT
	failed := failsNow(func() { fxpooltest.New(&ft, workerpool.Provide[*Conn]("", workerpool.Workers(1))) })
	if !failed || len(ft.errors()) != 1 {
		t.Errorf("New of an invalid app: FailNow %v, errors %q; want FailNow and one error", failed, ft.errors())
	}
}

func TestRequireStartReportsAFailedStart(t *testing.T) {
	var ft fakeT
	app := fxpooltest.New(&ft,
		fx.Supply(&DB{}, zap.NewNop()),
		workerpool.Provide[*Conn]("app",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(openConn, fxpooltest.OnOpen(1, fxpooltest.Fail)))),
		),
		fx.Invoke(func(*workerpool.Pool[*Conn]) {}),
	)
	if !failsNow(func() { app.RequireStart() }) {
		t.Errorf("RequireStart of a failing app did not call FailNow")
	}
	if got := ft.errors(); len(got) != 1 || !strings.Contains(got[0], "injected fault") {
		t.Errorf("reported %q, want the start's error", got)
	}
}
