package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/fx"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/workerpool"
)

// The tests of this file run fxsum's commands in-process with package
// fxpooltest: every app fxsum makes is an fxpooltest.App, whose leak check
// runs after the command returns; a Recorder watches every pool; faults are
// injected into fxsum's own per-worker constructors.

// watched is one in-process run of a command under fxpooltest.
type watched struct {
	rec    *fxpooltest.Recorder
	apps   []*fxpooltest.App
	err    error
	code   int // the exit status main would return
	stderr string
}

// runWatched runs fxsum with args in-process; wrap, if not nil, wraps each
// per-worker constructor by its name.
func runWatched(t *testing.T, wrap func(name string, c any) any, args ...string) *watched {
	t.Helper()
	w := &watched{rec: fxpooltest.NewRecorder()}
	o, err := parseArgs(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.test = &testSeams{
		newApp: func(opts ...fx.Option) *fx.App {
			a := fxpooltest.New(t, opts...)
			w.apps = append(w.apps, a)
			return a.App
		},
		pool:     []workerpool.Option{w.rec.Option()},
		wrap:     wrap,
		dbClosed: func() { w.rec.Mark("database") },
	}
	var out, errb bytes.Buffer
	w.err = runCommand(context.Background(), o, &out, &errb)
	w.code = exitCode(w.err, &errb)
	w.stderr = errb.String()
	if len(w.apps) != 1 {
		t.Fatalf("%d apps made, want 1", len(w.apps))
	}
	w.apps[0].VerifyNoLeaks()
	w.rec.NoCleanup("read buffer", "hashers")
	w.rec.Verify(t)
	return w
}

// closes returns, for each worker, the names of its resources in the
// order they closed.
func closes(events []workerpool.Event) map[int][]string {
	m := map[int][]string{}
	for _, e := range events {
		if c, ok := e.(workerpool.ResourceClosed); ok {
			m[c.Worker.ID] = append(m[c.Worker.ID], c.Resource)
		}
	}
	return m
}

// TestResourcesCloseOnceInReverse: index and verify, run as the user runs
// them, open each worker's resources in dependency order and close each
// that has something to close exactly once, in reverse order (the batch
// commits before its connection closes), then the database, and leave no
// goroutine behind.
func TestResourcesCloseOnceInReverse(t *testing.T) {
	tr := genTree(t, 300, 1<<20)
	dbFile := filepath.Join(t.TempDir(), "x.db")
	const workers = 3
	w := runWatched(t, nil, "--db", dbFile, "--workers", "3", "--quiet", tr.root)
	if w.err != nil {
		t.Fatalf("index: %v\n%s", w.err, w.stderr)
	}
	checkIndex(t, dbFile, tr)
	got := closes(w.rec.Events())
	for id := range workers {
		if want := []string{"batch", "connection"}; !slices.Equal(got[id], want) {
			t.Errorf("index: worker %d closed %q, want %q", id, got[id], want)
		}
	}

	w = runWatched(t, nil, "verify", "--db", dbFile, "--workers", "3", "--quiet")
	if w.err != nil {
		t.Fatalf("verify: %v\n%s", w.err, w.stderr)
	}
	if got := closes(w.rec.Events()); len(got) != 0 {
		t.Errorf("verify closed %v: its resources have nothing to close", got)
	}
}

// inject wraps the constructor of the resource called name with faults.
func inject(name string, faults ...fxpooltest.Fault) func(string, any) any {
	return func(n string, c any) any {
		if n != name {
			return c
		}
		return fxpooltest.Inject(c, faults...)
	}
}

// TestInjectedFaults: a per-worker open or close of fxsum's resources that
// fails or panics is one clear error with exit status 1, what had opened is
// closed, the database stays consistent, and nothing leaks.
func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		fault    fxpooltest.Fault
		want     []string // in the message
		// indexed: the files were indexed all the same (a fault at the
		// stop, after the last commit).
		indexed bool
	}{
		{"BatchOpenFails", "batch", fxpooltest.OnOpen(2, fxpooltest.Fail), []string{"start", "batch", "injected fault"}, false},
		{"ConnectionOpenPanics", "connection", fxpooltest.OnOpen(1, fxpooltest.Panic), []string{"start", "connection", "injected fault"}, false},
		{"BatchCloseFails", "batch", fxpooltest.OnClose(1, fxpooltest.Fail), []string{"batch", "injected fault"}, true},
		{"ConnectionClosePanics", "connection", fxpooltest.OnClose(2, fxpooltest.Panic), []string{"connection", "injected fault"}, true},
	}
	tr := genTree(t, 100)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbFile := filepath.Join(t.TempDir(), "x.db")
			w := runWatched(t, inject(tt.resource, tt.fault), "--db", dbFile, "--workers", "2", "--quiet", tr.root)
			if !errors.Is(w.err, fxpooltest.ErrInjected) {
				t.Fatalf("error %v, want the injected fault\nstderr:\n%s", w.err, w.stderr)
			}
			if w.code != 1 {
				t.Errorf("exit status %d, want 1", w.code)
			}
			msg := strings.TrimSpace(w.stderr)
			t.Logf("exit %d: %s", w.code, msg)
			for _, s := range tt.want {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not name %q", msg, s)
				}
			}
			if !strings.HasPrefix(msg, "fxsum: ") || strings.Count(msg, "\n") > 2 {
				t.Errorf("message is not one short fxsum line:\n%s", msg)
			}
			integrityCheck(t, dbFile)
			if tt.indexed {
				checkIndex(t, dbFile, tr)
			} else if n := len(indexRows(t, dbFile)); n != 0 {
				t.Errorf("%d rows after a failed start, want none", n)
			}
			// The next run, without the fault, completes the index.
			if r := runWatched(t, nil, "--db", dbFile, "--quiet", tr.root); r.err != nil {
				t.Fatalf("rerun: %v\n%s", r.err, r.stderr)
			}
			checkIndex(t, dbFile, tr)
		})
	}
}
