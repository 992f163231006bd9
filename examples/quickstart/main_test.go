package main

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"

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
	app := newApp(&out)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-app.Wait() // greet shuts the app down once its tasks are done
	if err := app.Stop(t.Context()); err != nil {
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
