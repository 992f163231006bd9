package fxpooltest

import (
	"context"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
)

// TB is the part of testing.TB that fxpooltest uses; *testing.T and
// *testing.B satisfy it. If t also has a Helper method, fxpooltest calls
// it, so that failures point at the caller.
type TB interface {
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	FailNow()
}

func helper(t TB) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
}

// App is an fx app under test, like fxtest.App, whose stop is followed by
// a check that no goroutine outlived it. The embedded *fx.App gives Start
// and Stop for tests that expect them to fail.
type App struct {
	*fx.App
	t      TB
	before goleak.Option // the goroutines that ran before the app was made
}

// New makes an app of opts, logging fx's events to t.Logf, and fails the
// test at once (t.FailNow) if fx.New fails. It starts nothing. Goroutines
// running when New is called are never reported as leaks; tests that run
// in parallel with t share the process, so their goroutines may be.
func New(t TB, opts ...fx.Option) *App {
	helper(t)
	before := goleak.IgnoreCurrent()
	logger := fx.WithLogger(func() fxevent.Logger { return fxtest.NewTestLogger(t) })
	app := fx.New(append([]fx.Option{logger}, opts...)...)
	if err := app.Err(); err != nil {
		t.Errorf("fxpooltest: fx.New: %v", err)
		t.FailNow()
	}
	return &App{App: app, t: t, before: before}
}

// RequireStart starts the app within its start timeout and returns it. If
// the start fails — fx has then stopped what had started — it reports the
// error and any goroutine left over, and fails the test at once.
func (a *App) RequireStart() *App {
	helper(a.t)
	ctx, cancel := context.WithTimeout(context.Background(), a.StartTimeout())
	defer cancel()
	if err := a.Start(ctx); err != nil {
		a.t.Errorf("fxpooltest: start: %v", err)
		a.VerifyNoLeaks()
		a.t.FailNow()
	}
	return a
}

// RequireStop stops the app within its stop timeout, reports the stop's
// error, then checks with [App.VerifyNoLeaks] that every goroutine started
// since [New] has ended. It fails the test at once if the stop failed.
func (a *App) RequireStop() {
	helper(a.t)
	ctx, cancel := context.WithTimeout(context.Background(), a.StopTimeout())
	defer cancel()
	err := a.Stop(ctx)
	if err != nil {
		a.t.Errorf("fxpooltest: stop: %v", err)
	}
	a.VerifyNoLeaks()
	if err != nil {
		a.t.FailNow()
	}
}

// VerifyNoLeaks reports through t.Errorf the goroutines started since [New]
// that are still running, waiting a little for those about to end (as
// goleak.Find does). Call it after the app stopped, or after a start that
// failed; RequireStop calls it.
func (a *App) VerifyNoLeaks() {
	helper(a.t)
	if err := goleak.Find(a.before); err != nil {
		a.t.Errorf("fxpooltest: goroutines outlived the app: %v", err)
	}
}
