package fxpooltest_test

import (
	"testing"

	"github.com/fxpool/fxpool/fxpooltest"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newApp is fxpooltest.New with the pools' logs sent to t.
func newApp(t *testing.T, opts ...fx.Option) *fxpooltest.App {
	t.Helper()
	return fxpooltest.New(t, append(opts, fx.Supply(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))))...)
}
