package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestStatAheadIsLstat stats a listing with the helper, alone and beside
// the walker, in a folder with files of different sizes, a subfolder, a
// symbolic link, a file started early, a file deleted and one replaced by
// a folder since the listing: each result is what lstatAt says of the
// entry at its index, and only regular files not started early are
// statted.
func TestStatAheadIsLstat(t *testing.T) {
	dir := t.TempDir()
	for i := range 100 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), make([]byte, i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "f050d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f000", filepath.Join(dir, "f060l")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list, err := readDir(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	sortDirents(list)
	early := &earlyFile{}
	for i := range list {
		if list[i].name == "f070" {
			list[i].early = early
		}
	}
	// Changed since the listing.
	if err := os.Remove(filepath.Join(dir, "f080")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "f090")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "f090"), 0o755); err != nil {
		t.Fatal(err)
	}

	// The helper alone: it stats everything. Then the helper and the
	// walker: each result, whoever made it, is the entry's.
	for _, alone := range []bool{true, false} {
		a := startStatAhead(f.Fd(), dir, list)
		if alone {
			<-a.done
		}
		var scratch []byte
		for i, e := range list {
			if !e.typ.IsRegular() || e.early != nil {
				if got, ok := a.result(i); ok && got != (statResult{}) {
					t.Errorf("%q (type %v, early %v) statted: %+v", e.name, e.typ, e.early != nil, got)
				}
				continue
			}
			var want statResult
			want.st, want.regular, want.err = lstatAt(f.Fd(), dir, e.name, &scratch)
			got, ok := a.result(i)
			if !ok {
				if alone {
					t.Fatalf("alone, the helper left %q", e.name)
				}
				got = want // the walker's to stat
			}
			if got.st != want.st || got.regular != want.regular || (got.err == nil) != (want.err == nil) {
				t.Errorf("%q: %+v, want %+v", e.name, got, want)
			}
			switch e.name {
			case "f080":
				if !errors.Is(got.err, fs.ErrNotExist) {
					t.Errorf("deleted f080: error %v, want not exist", got.err)
				}
			case "f090":
				if got.regular || got.err != nil {
					t.Errorf("f090, a folder now: %+v, want not regular", got)
				}
			case "f099":
				if got.st.size != 99 || !got.regular {
					t.Errorf("f099: %+v, want a regular file of 99 bytes", got)
				}
			}
		}
		a.close()
	}

	// Closed before it is done, it stops; a nil one is closed.
	b := startStatAhead(f.Fd(), dir, list)
	b.close()
	(*statAhead)(nil).close()
}

// statesRecorder records the states a walk gives, and wants them all.
type statesRecorder struct {
	want   bool
	states map[string]fileState
}

func (*statesRecorder) enterDir(context.Context, string) error { return nil }
func (*statesRecorder) needState(string) bool                  { return true }
func (r *statesRecorder) file(_ context.Context, dir, name string, st *fileState, _ bool) error {
	r.states[filepath.Join(dir, name)] = *st
	return nil
}
func (*statesRecorder) leaveDir(context.Context, string, bool) error { return nil }
func (*statesRecorder) problem(string, bool, error)                  {}
func (r *statesRecorder) wantsStates() bool                          { return r.want }

// TestWalkerStatsOnTwoGoroutines walks a folder of files of different
// sizes among subfolders, symbolic links and excluded files, with and
// without statting ahead: every file's state is its own.
func TestWalkerStatsOnTwoGoroutines(t *testing.T) {
	root := t.TempDir()
	want := make(map[string]fileState)
	for i := range 3 * statSplitMin {
		p := filepath.Join(root, fmt.Sprintf("f%03d", i))
		switch i % 10 {
		case 3:
			p += ".tmp"
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		case 5:
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(p, "inner")
		case 7:
			if err := os.Symlink("f000", p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, make([]byte, i), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = stateOf(fi)
	}
	ex, err := newExcluder([]string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []bool{false, true} {
		r := &statesRecorder{want: ahead, states: make(map[string]fileState)}
		w := &walker{exclude: ex, v: r}
		if err := w.walk(context.Background(), root); err != nil {
			t.Fatal(err)
		}
		if len(r.states) != len(want) {
			t.Errorf("ahead %v: %d files, want %d", ahead, len(r.states), len(want))
		}
		for p, st := range want {
			if got, ok := r.states[p]; !ok || got != st {
				t.Errorf("ahead %v: %s: %+v (%v), want %+v", ahead, p, got, ok, st)
			}
		}
	}
}
