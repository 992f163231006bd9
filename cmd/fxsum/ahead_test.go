package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testRows makes a database with a row of each name in each folder, and
// starts a row reader on it.
func testRows(t *testing.T, rows map[string][]string) (*sql.DB, *rowReader) {
	t.Helper()
	ctx := context.Background()
	db, err := openDB(ctx, filepath.Join(t.TempDir(), "x.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for dir, names := range rows {
		addRows(t, db, dir, names...)
	}
	rr, err := startRowReader(ctx, db, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rr.close(); err != nil {
			t.Error(err)
		}
	})
	return db, rr
}

// addRows adds a row of each name in dir, indexed an hour after its
// modification time.
func addRows(t *testing.T, db *sql.DB, dir string, names ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var w writeLock
	b, err := newBatch(ctx, &w, conn, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.now = func() time.Time { return time.Unix(7200, 0) }
	for _, name := range names {
		r := fileRow{dir: dir, name: name, algo: "sha256", digest: make([]byte, 32), state: fileState{size: 1, mtime: 0}}
		if err := b.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// cursorNames reads the names of c's rows and closes it.
func cursorNames(t *testing.T, c *cursor) []string {
	t.Helper()
	c.load()
	var names []string
	for ; c.ok; c.next() {
		names = append(names, c.row.name)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestCursorAhead opens cursors ahead of folders with no rows: each finds
// the first folder at or after its own, in the index's order, that has
// rows, reads that folder's rows, and tells which folders it passed, also
// when names with a byte before '/' sort a folder's neighbour between it
// and its subfolders.
func TestCursorAhead(t *testing.T) {
	_, rr := testRows(t, map[string][]string{
		"/r/a":     {"1", "2"},
		"/r/a b":   {"3"},
		"/r/a/x/y": {"4", "5"},
		"/r/z":     {"6"},
	})
	cases := []struct {
		from     string
		dir      string // the folder found
		rows     []string
		skipped  []string
		notSkips []string
	}{
		{"/r/a", "/r/a", []string{"1", "2"}, nil, []string{"/r/a", "/r", "/r/a b"}},
		{"/r/a/x", "/r/a/x/y", []string{"4", "5"}, []string{"/r/a/x", "/r/a/x/a", "/r/a/x/b"}, []string{"/r/a", "/r/a b", "/r/a/x/y", "/r/a/x/y/w", "/r/z"}},
		{"/r/a ", "/r/a b", []string{"3"}, []string{"/r/a ", "/r/a a", "/r/a /q"}, []string{"/r/a b", "/r/a/x", "/r/a"}},
		{"/r/m", "/r/z", []string{"6"}, []string{"/r/m", "/r/m/n", "/r/y"}, []string{"/r/z", "/r/z/q", "/r/l"}},
		{"/r/zz", "", nil, []string{"/r/zz", "/r/zz/a", "/s"}, []string{"/r/z", "/r/a"}},
	}
	for _, tc := range cases {
		c := rr.openAhead(tc.from)
		c.load()
		if c.dir != tc.dir || c.none != (tc.dir == "") {
			t.Errorf("ahead of %q: found %q (none %v), want %q", tc.from, c.dir, c.none, tc.dir)
		}
		for _, d := range tc.skipped {
			if !c.skipped(d) {
				t.Errorf("ahead of %q: %q not skipped", tc.from, d)
			}
		}
		for _, d := range tc.notSkips {
			if c.skipped(d) {
				t.Errorf("ahead of %q: %q skipped", tc.from, d)
			}
		}
		if got := cursorNames(t, c); !slices.Equal(got, tc.rows) {
			t.Errorf("ahead of %q: rows %q, want %q", tc.from, got, tc.rows)
		}
	}
	// A cursor of its own folder skips nothing.
	c := rr.open("/r/m")
	c.load()
	if c.ok || c.skipped("/r/m") {
		t.Errorf("a folder's own cursor: row %v, skipped %v", c.ok, c.skipped("/r/m"))
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
}

// TestCursorsClosedBeforeRead closes cursors that the reader has not
// begun, and one it is in the middle of: each close returns, and the
// reader goes on with the next.
func TestCursorsClosedBeforeRead(t *testing.T) {
	names := make([]string, firstRowsPerChunk+3*maxRowsPerChunk)
	for i := range names {
		names[i] = fmt.Sprintf("f%06d", i)
	}
	_, rr := testRows(t, map[string][]string{"/big": names, "/small": {"a"}})
	big := rr.open("/big")
	ahead := rr.openAhead("/big/x")
	big.load() // the reader waits for room for the next chunks
	if err := big.close(); err != nil {
		t.Fatal(err)
	}
	if err := ahead.close(); err != nil {
		t.Fatal(err)
	}
	if got := cursorNames(t, rr.open("/small")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("rows %q after closed cursors, want [a]", got)
	}
}

// TestEnterDirAgainReadsRows: a folder entered a second time in a run
// (the folder of two roots that are files) is read again, even when a
// cursor ahead found no rows there: this run may have added some since.
func TestEnterDirAgainReadsRows(t *testing.T) {
	ctx := context.Background()
	db, rr := testRows(t, map[string][]string{"/p/q": {"x"}})
	v := &indexVisitor{rows: rr, visited: make(map[string]struct{})}
	defer func() {
		if err := v.closeCursors(); err != nil {
			t.Error(err)
		}
	}()
	if err := v.enterDir(ctx, "/p/b"); err != nil {
		t.Fatal(err)
	}
	v.enterNext(ctx, "/p/a")
	v.ahead.load() // found /p/q, and /p/b without rows
	if !v.ahead.skipped("/p/b") {
		t.Fatal("/p/b not skipped: the test tests nothing")
	}
	addRows(t, db, "/p/b", "y") // as the first visit's worker would
	if err := v.enterDir(ctx, "/p/b"); err != nil {
		t.Fatal(err)
	}
	if !v.cur.ok || v.cur.row.name != "y" {
		t.Errorf("/p/b entered again: row %q (loaded %v), want y", v.cur.row.name, v.cur.ok)
	}
	// A folder entered once on the way to the cursor's has no rows, and
	// the cursor stays for its own folder.
	v.enterNext(ctx, "/p/c")
	if err := v.enterDir(ctx, "/p/c"); err != nil {
		t.Fatal(err)
	}
	if v.cur.ok || v.ahead == nil {
		t.Errorf("/p/c: row %v, cursor ahead %v", v.cur.ok, v.ahead != nil)
	}
	if err := v.enterDir(ctx, "/p/q"); err != nil {
		t.Fatal(err)
	}
	if v.ahead != nil || !v.cur.ok || v.cur.row.name != "x" {
		t.Errorf("/p/q: row %q (loaded %v), cursor ahead %v", v.cur.row.name, v.cur.ok, v.ahead != nil)
	}
}

// aheadRecorder records a walk's enterDir and enterNext calls.
type aheadRecorder struct{ calls []string }

func (r *aheadRecorder) enterDir(_ context.Context, dir string) error {
	r.calls = append(r.calls, "enter "+dir)
	return nil
}
func (r *aheadRecorder) enterNext(_ context.Context, dir string) {
	r.calls = append(r.calls, "next "+dir)
}
func (*aheadRecorder) needState(string) bool                                        { return false }
func (*aheadRecorder) file(context.Context, string, string, *fileState, bool) error { return nil }
func (*aheadRecorder) leaveDir(context.Context, string, bool) error                 { return nil }
func (*aheadRecorder) problem(string, bool, error)                                  {}

// TestWalkerTellsTheNextFolder walks a tree of folders that hold only
// folders, folders whose names sort before and after a sibling's
// subfolders, an excluded folder and files: the walker tells the visitor,
// once it has listed each folder, the folder it enters next, and enters
// that one.
func TestWalkerTellsTheNextFolder(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/x/y/z", "a b/c", "a-c", "a.d/e", "b/skip.tmp/q", "b/t", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ex, err := newExcluder([]string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	r := &aheadRecorder{}
	w := &walker{exclude: ex, v: r}
	if err := w.walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	var want []string
	dirs := []string{"", "a", "a/x", "a/x/y", "a/x/y/z", "a b", "a b/c", "a-c", "a.d", "a.d/e", "b", "b/t", "c"}
	for i, d := range dirs {
		want = append(want, "enter "+filepath.Join(root, d))
		if i+1 < len(dirs) {
			want = append(want, "next "+filepath.Join(root, dirs[i+1]))
		}
	}
	if !slices.Equal(r.calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(r.calls, "\n"), strings.Join(want, "\n"))
	}
}

// TestRerunThroughFoldersOfFolders indexes a tree whose files are in
// folders under chains of folders that hold no files, with neighbours
// whose names sort between a folder and its subfolders in the index, then
// changes it in every way a rerun must see (a file rewritten, one with a
// new time, one replaced by another, files deleted and added, a folder
// deleted, a chain of new folders): the rerun
// hashes exactly the changed files, removes the rows of the deleted ones,
// and leaves the index the tree.
func TestRerunThroughFoldersOfFolders(t *testing.T) {
	root := t.TempDir()
	tr := &tree{root: root, files: make(map[string]string)}
	rng := rand.New(rand.NewPCG(11, 12))
	var leaves []string
	for _, d := range []string{"a", "a b", "a-c", "a.d", "b"} {
		for _, e := range []string{"e0", "e0 x", "e1"} {
			leaves = append(leaves, filepath.Join(root, d, e, "f"))
		}
	}
	for _, leaf := range leaves {
		for i := range firstRowsPerChunk + 10 {
			tr.write(t, filepath.Join(leaf, fmt.Sprintf("g%03d", i)), rng, rng.IntN(64))
		}
	}
	work := t.TempDir()
	db := filepath.Join(work, "fx.db")
	mustOK(t, fxsum(t, work, nil, "--db", db, root))

	rewritten := filepath.Join(leaves[4], "g050") // a b/e0 x/f
	tr.write(t, rewritten, rng, 100)
	touched := filepath.Join(leaves[7], "g001") // a-c/e0 x/f
	later := time.Now().Add(-30 * time.Minute)
	if err := os.Chtimes(touched, later, later); err != nil {
		t.Fatal(err)
	}
	replaced := filepath.Join(leaves[13], "g070") // b/e0 x/f, the last row
	fi, err := os.Stat(replaced)
	if err != nil {
		t.Fatal(err)
	}
	tr.write(t, replaced+".new", rng, int(fi.Size())+1)
	if err := os.Rename(replaced+".new", replaced); err != nil {
		t.Fatal(err)
	}
	tr.files[replaced] = tr.files[replaced+".new"]
	delete(tr.files, replaced+".new")
	tr.remove(t, filepath.Join(leaves[1], "g000"))                     // a/e0 x/f's first
	tr.remove(t, filepath.Join(leaves[9], "g073"))                     // a.d/e0/f's last
	tr.remove(t, filepath.Dir(leaves[11]))                             // a.d/e1, all of it
	tr.write(t, filepath.Join(leaves[2], "new"), rng, 5)               // a/e1/f
	tr.write(t, filepath.Join(root, "a", "e0", "n", "o", "p"), rng, 6) // a new chain
	removed := 2 + firstRowsPerChunk + 10

	r := mustOK(t, fxsum(t, work, nil, "--db", db, root))
	s := parseSummary(t, r.stderr)
	want := summary{indexed: len(tr.files), hashed: 5, skipped: len(tr.files) - 5, removed: removed}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	checkIndex(t, db, tr)
	r = mustOK(t, fxsum(t, work, nil, "--db", db, root))
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.removed != 0 {
		t.Errorf("second rerun: summary %+v, want nothing hashed or removed", s)
	}
}
