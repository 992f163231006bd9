package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEarlyFileEitherOrder: whether the task or the walk comes first, the
// row of a hashed file is added exactly once, by whoever comes second, and
// the row of a file that could not be hashed never.
func TestEarlyFileEitherOrder(t *testing.T) {
	row := fileRow{dir: "/d", name: "f", digest: []byte{1}}
	// The task first: the walker adds the row.
	e := &earlyFile{}
	if e.hashedAs(row, true) {
		t.Error("the task adds the row before the walk reached the file")
	}
	if got, ok := e.reached(); !ok || got.name != "f" {
		t.Errorf("reached = %+v, %v; want the row", got, ok)
	}
	// The walk first: the task adds it.
	e = &earlyFile{}
	if _, ok := e.reached(); ok {
		t.Error("reached gives a row not hashed yet")
	}
	if !e.hashedAs(row, true) {
		t.Error("the task does not add the row of a file the walk has passed")
	}
	// Not hashed (gone, unreadable): no row, either order.
	e = &earlyFile{}
	if e.hashedAs(fileRow{}, false) {
		t.Error("the task adds the row of a file it could not hash")
	}
	if _, ok := e.reached(); ok {
		t.Error("reached gives the row of a file that could not be hashed")
	}
	e = &earlyFile{}
	e.reached()
	if e.hashedAs(fileRow{}, false) {
		t.Error("the task adds the row of a file it could not hash")
	}
	// Racing: exactly one of the two adds each row.
	var mu sync.Mutex
	added := make(map[int]int)
	var wg sync.WaitGroup
	for i := range 2000 {
		e := &earlyFile{}
		r := fileRow{name: fmt.Sprint(i)}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if e.hashedAs(r, true) {
				mu.Lock()
				added[i]++
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			if got, ok := e.reached(); ok {
				if got.name != r.name {
					t.Errorf("reached gives %q, want %q", got.name, r.name)
				}
				mu.Lock()
				added[i]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range 2000 {
		if added[i] != 1 {
			t.Fatalf("row %d added %d times, want once", i, added[i])
		}
	}
}

// earlyRecorder is a visitor that starts files early, but refuses every
// third start (a full pool), and records what the walk gives it.
type earlyRecorder struct {
	countVisitor
	starts  int
	started map[string]*earlyFile
	visited []string // in the order of file and fileEarly calls
	given   []string // those given to fileEarly
	refuse  bool
}

func (r *earlyRecorder) early(context.Context, string) func(string) *earlyFile {
	if r.refuse {
		return nil
	}
	return func(name string) *earlyFile {
		r.starts++
		if r.starts%3 == 0 {
			return nil
		}
		if _, dup := r.started[name]; dup {
			panic("started twice: " + name)
		}
		e := &earlyFile{}
		r.started[name] = e
		return e
	}
}

func (r *earlyRecorder) fileEarly(_ context.Context, _, name string, e *earlyFile) error {
	if r.started[name] != e {
		panic("fileEarly of a file not started: " + name)
	}
	r.visited = append(r.visited, name)
	r.given = append(r.given, name)
	return nil
}

func (r *earlyRecorder) needState(string) bool { return false }

func (r *earlyRecorder) file(_ context.Context, _, name string, _ *fileState, _ bool) error {
	r.visited = append(r.visited, name)
	return nil
}

// TestWalkerStartsFilesEarly walks a folder of more entries than a chunk
// of the listing, with files excluded, subfolders, a symbolic link, the
// database's files and names that sort differently as bytes and as text:
// every file the walk would visit is visited once, in byte order, early or
// not, and only those are started early.
func TestWalkerStartsFilesEarly(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 3*listChunk + 7 {
		name := []string{"f", "\xff", "\u00e9", "\uff5e", "a\x7f", "x.tmp-"}[i%6] + fmt.Sprint(i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	for _, name := range []string{"skip.tmp", "fx.db", "fx.db-wal"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "inner"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f0", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "inner") // the subfolder's, after the folder's files
	slices.Sort(want[:len(want)-1])
	ex, err := newExcluder([]string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, refuse := range []bool{false, true} {
		r := &earlyRecorder{started: make(map[string]*earlyFile), refuse: refuse}
		w := &walker{exclude: ex, self: newSelfFiles(filepath.Join(dir, "fx.db")), v: r}
		if err := w.walk(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.visited, want) {
			t.Fatalf("refuse=%v: visited %d files, want %d in byte order; first differences: %q", refuse, len(r.visited), len(want), firstDiff(r.visited, want))
		}
		if len(r.given) != len(r.started) {
			t.Errorf("refuse=%v: %d files started early, %d given back", refuse, len(r.started), len(r.given))
		}
		if !refuse && (len(r.given) == 0 || len(r.given) == len(want)-1) {
			t.Errorf("%d of %d files early, want some, not all (every third start is refused)", len(r.given), len(want))
		}
		if refuse && len(r.given) != 0 {
			t.Errorf("%d files early in a folder the visitor does not hash early", len(r.given))
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q, want %q", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}

// TestLargeFlatFolder indexes one folder of more files than a chunk of the
// listing, than the rows held for the pool, than the early files in flight
// and than the radix sort's threshold, with the database inside it and
// files excluded: the index holds every file with its digest, the
// manifest passes sha256sum, and a rerun hashes nothing.
func TestLargeFlatFolder(t *testing.T) {
	root := t.TempDir()
	tr := &tree{root: root, files: make(map[string]string)}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		name := []string{"file-", "\xff", "\u00e9", "IMG_0000_", "a"}[i%5] + fmt.Sprint(i)
		tr.write(t, filepath.Join(root, name), rng, rng.IntN(600))
	}
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("x%d.tmp", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(root, "fx.db")
	r := mustOK(t, fxsum(t, root, nil, "--db", db, "--exclude", "*.tmp", root))
	if s := parseSummary(t, r.stderr); s.hashed != len(tr.files) || s.indexed != len(tr.files) {
		t.Errorf("summary %+v, want %d hashed", s, len(tr.files))
	}
	checkIndex(t, db, tr)
	integrityCheck(t, db)
	m := mustOK(t, fxsum(t, root, nil, "manifest", "--db", db, "--root", root))
	sha256sumCheck(t, root, m.stdout, len(tr.files))
	r = mustOK(t, fxsum(t, root, nil, "--db", db, "--exclude", "*.tmp", root))
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.skipped != len(tr.files) {
		t.Errorf("rerun: summary %+v, want all %d skipped", s, len(tr.files))
	}
}

// TestFolderChangingWhileListed indexes a new folder while files are
// created, rewritten and deleted in it: each run succeeds, and once the
// folder is left alone, a run makes the index exactly the folder.
func TestFolderChangingWhileListed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "flat")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 4000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", i%300)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := rng.IntN(4000)
			p := filepath.Join(dir, fmt.Sprintf("f%d", k))
			switch i % 3 {
			case 0:
				_ = os.Remove(p)
			case 1:
				_ = os.WriteFile(p, []byte(strings.Repeat("y", rng.IntN(500))), 0o644)
			case 2:
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("new%d", i)), []byte("n"), 0o644)
			}
		}
	}()
	work := t.TempDir()
	var db string
	for i := range 3 {
		db = filepath.Join(work, fmt.Sprintf("fx%d.db", i))
		mustOK(t, fxsum(t, work, nil, "--db", db, dir))
		mustOK(t, fxsum(t, work, nil, "--db", db, dir))
	}
	close(stop)
	<-done
	// Left alone, and an hour old (no file racily clean): a run of the
	// last database makes it the folder.
	tr := &tree{root: dir, files: make(map[string]string)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		tr.files[p] = hex.EncodeToString(sum[:])
	}
	mustOK(t, fxsum(t, work, nil, "--db", db, dir))
	checkIndex(t, db, tr)
	integrityCheck(t, db)
}
