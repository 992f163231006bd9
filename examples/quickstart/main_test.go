package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a buffer that workers may write to at once, as they may to
// os.Stdout.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestQuickStart(t *testing.T) {
	var out syncBuffer
	if err := run(newApp(&out)); err != nil { // greet shuts the app down once its tasks are done
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"hello Ada", "hello Grace", "hello Barbara"}
	if len(lines) != 6 || strings.Join(lines[:3], ",") != strings.Join(want, ",") {
		t.Fatalf("output:\n%s\nwant three greetings, two sessions closed, the store closed", out.String())
	}
	closes := strings.Join(lines[3:5], ",")
	if closes != "session 0 closed,session 1 closed" && closes != "session 1 closed,session 0 closed" {
		t.Errorf("sessions closed as %q, want both", closes)
	}
	if lines[5] != "store closed" {
		t.Errorf("last line %q, want the store closed after every session", lines[5])
	}
}

// TestRunReportsFailedStart: where app.Run would exit the process and
// fx.NopLogger would say nothing, run returns the pool's start error, after
// fx has rolled back what had started.
func TestRunReportsFailedStart(t *testing.T) {
	errRefused := errors.New("session refused")
	var out syncBuffer
	app := fx.New(
		fx.NopLogger,
		fxpool.Module,
		fx.Supply(fx.Annotate(&out, fx.As(new(io.Writer)))),
		fx.Provide(NewStore),
		workerpool.Provide[Deps]("greeter",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func(s *Store) (*Session, error) { return nil, errRefused }),
			),
		),
		fx.Invoke(greet),
	)
	err := run(app)
	if !errors.Is(err, errRefused) {
		t.Fatalf("run returned %v, want the start error %v", err, errRefused)
	}
	if got := out.String(); got != "store closed\n" {
		t.Errorf("output %q, want no greeting and the store closed by the rollback", got)
	}
}

// TestRunReportsExitCode: a Shutdown with a non-zero exit code (as a pool
// past MaxRestarts asks for) is an error of run, so main exits non-zero.
func TestRunReportsExitCode(t *testing.T) {
	app := fx.New(
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle, sd fx.Shutdowner) {
			lc.Append(fx.StartHook(func() error { return sd.Shutdown(fx.ExitCode(3)) }))
		}),
	)
	err := run(app)
	if err == nil || !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("run returned %v, want an error naming exit code 3", err)
	}
}

// TestReadmeShowsThisProgram keeps the README's quick start the program
// that this package compiles and tests.
func TestReadmeShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, src) {
		t.Error("README.md does not contain examples/quickstart/main.go verbatim: update one from the other")
	}
}
