package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// a15fSmallTree writes n files in a few folders and returns the root.
func a15fSmallTree(t *testing.T, n int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	for i := range n {
		a15fWrite(t, filepath.Join(root, fmt.Sprintf("d%d/f%04d", i%5, i)), a11random(uint64(i), 20+i%300))
	}
	return root
}

// a15fOneLineNaming fails unless r is exit 2 with one stderr line that
// names the database.
func a15fOneLineNaming(t *testing.T, what string, r result, db string) {
	t.Helper()
	lines := a15fLines(r.stderr)
	if r.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], db) {
		t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line naming %s", what, r.code, a15fCut(r.stderr), db)
	}
}

// TestAttack15FxsumDamagedDatabaseShapes damages an index in several ways
// (truncated in the middle of a page, a page zeroed, the last page
// scribbled on) and runs manifest, verify and index on each. The README:
// "A database that cannot be used is one line that names the file and the
// cause, with exit status 2: ... a corrupt one". So each command must
// either refuse with one line naming the file (exit 2), or work and be
// right: never exit 1 with an SQL error that names nothing, and never an
// index run that exits 0 and leaves a database the manifest cannot read.
func TestAttack15FxsumDamagedDatabaseShapes(t *testing.T) {
	root := a15fSmallTree(t, 400)
	work := t.TempDir()
	good := filepath.Join(work, "good.db")
	a15fOK(t, work, "--db", good, root)
	exp, _ := a15fExpect(t, root)
	if m := a15fOK(t, work, "--db", good, "manifest", "--root", root); m.stdout != exp {
		t.Fatalf("the undamaged manifest is wrong")
	}
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(good + "-wal"); err == nil {
		t.Logf("a -wal file is left beside the database")
	}
	size := len(orig)
	page := 4096
	t.Logf("database: %d bytes", size)
	shapes := map[string]func(b []byte) []byte{
		"truncated mid last page": func(b []byte) []byte { return b[:size-page/2] },
		"truncated mid page 2":    func(b []byte) []byte { return b[:page+page/2+100] },
		"truncated mid page 3":    func(b []byte) []byte { return b[:2*page+808] },
		"page 2 zeroed": func(b []byte) []byte {
			c := bytes.Clone(b)
			clear(c[page : 2*page])
			return c
		},
		"last page scribbled": func(b []byte) []byte {
			c := bytes.Clone(b)
			copy(c[size-page+100:], bytes.Repeat([]byte{0xA5}, 1000))
			return c
		},
	}
	for name, damage := range shapes {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			for _, cmd := range []string{"manifest", "verify", "index"} {
				db := filepath.Join(t.TempDir(), "bad.db")
				if err := os.WriteFile(db, damage(orig), 0o644); err != nil {
					t.Fatal(err)
				}
				switch cmd {
				case "manifest":
					r := a15f(t, work, "--db", db, "manifest", "--root", root)
					if r.code == 0 {
						if r.stdout != exp {
							t.Errorf("manifest of a damaged database: exit 0 with a wrong manifest (%d lines, want %d)", len(a15fLines(r.stdout)), len(a15fLines(exp)))
						}
					} else {
						a15fOneLineNaming(t, "manifest", r, db)
					}
				case "verify":
					r := a15f(t, work, "--db", db, "verify")
					if r.code != 0 || r.stdout != "" {
						a15fOneLineNaming(t, "verify", r, db)
					}
				case "index":
					r := a15f(t, work, "--db", db, root)
					if r.code != 0 {
						a15fOneLineNaming(t, "index", r, db)
						continue
					}
					m := a15f(t, work, "--db", db, "manifest", "--root", root)
					if m.code != 0 || m.stdout != exp {
						t.Errorf("index into a damaged database exited 0, then manifest: exit %d, %d lines (want %d), stderr %q",
							m.code, len(a15fLines(m.stdout)), len(a15fLines(exp)), m.stderr)
					}
				}
			}
		})
	}
}

// TestAttack15FxsumHardLinkToTheDatabaseIsNotIndexed: the README says "The
// database is never indexed, whatever path leads to it ...: fxsum knows it
// and SQLite's files beside it by device and inode." A hard link to the
// database inside the tree is such a path (same device and inode).
func TestAttack15FxsumHardLinkToTheDatabaseIsNotIndexed(t *testing.T) {
	root := a15fSmallTree(t, 10)
	work := t.TempDir()
	db := filepath.Join(work, "x.db")
	a15fOK(t, work, "--db", db, root)
	if err := os.Link(db, filepath.Join(root, "copy-of-index.db")); err != nil {
		t.Skipf("hard link: %v", err)
	}
	a15fOK(t, work, "--db", db, root)
	m := a15fOK(t, work, "--db", db, "manifest")
	if strings.Contains(m.stdout, "copy-of-index.db") {
		t.Errorf("a hard link to the database was indexed:\n%s", a15fLinesWith(m.stdout, "copy-of-index.db"))
	}
	if v := a15f(t, work, "--db", db, "verify"); v.code != 0 {
		t.Errorf("verify right after the index: exit %d\n%s", v.code, v.stdout)
	}
}

// TestAttack15FxsumDatabasesThatCannotBeUsed: a folder, a text file,
// another program's SQLite database, a path in a folder that does not
// exist, a read-only database (to index into, as nobody): each is one line
// naming the file, exit 2, and the file is left byte for byte as it was.
func TestAttack15FxsumDatabasesThatCannotBeUsed(t *testing.T) {
	root := a15fSmallTree(t, 5)
	work := t.TempDir()
	// Another program's SQLite database: an fxsum database whose header
	// says another application_id (offset 68).
	other := filepath.Join(work, "other.db")
	a15fOK(t, work, "--db", filepath.Join(work, "seed.db"), root)
	seed, err := os.ReadFile(filepath.Join(work, "seed.db"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := bytes.Clone(seed)
	copy(foreign[68:72], []byte{0x0f, 0x05, 0x51, 0x17}) // another application_id
	if err := os.WriteFile(other, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(work, "notes.txt")
	if err := os.WriteFile(text, []byte("my notes, not a database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "adir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{other, text, dir, filepath.Join(work, "nope", "x.db")} {
		for _, args := range [][]string{{root}, {"manifest"}, {"verify"}} {
			before, _ := os.ReadFile(db)
			r := a15f(t, work, append([]string{"--db", db}, args...)...)
			a15fOneLineNaming(t, fmt.Sprintf("--db %s %v", filepath.Base(db), args), r, db)
			after, _ := os.ReadFile(db)
			if !bytes.Equal(before, after) {
				t.Errorf("--db %s %v changed the file", db, args)
			}
			for _, side := range []string{"-wal", "-shm", "-journal"} {
				if _, err := os.Stat(db + side); err == nil {
					t.Errorf("--db %s %v left %s beside it", db, args, side)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(work, "nope")); err == nil {
		t.Errorf("a run made the missing folder of --db")
	}
}

// TestAttack15FxsumConcurrentRunsOnOneDatabase: while one index run writes
// the database, other runs index another tree into it, and manifest and
// verify read it. Each must succeed or refuse with one line naming the
// database; at the end the index holds both trees, exactly.
func TestAttack15FxsumConcurrentRunsOnOneDatabase(t *testing.T) {
	a := a15fSmallTree(t, 3000)
	b := a15fSmallTree(t, 300)
	work := t.TempDir()
	db := filepath.Join(work, "x.db")
	a15fOK(t, work, "--db", db, b) // the database exists
	var wg sync.WaitGroup
	results := make(chan struct {
		what string
		r    result
	}, 64)
	wg.Go(func() {
		r := a15f(t, work, "--db", db, "--workers", "1", "--rehash", a)
		results <- struct {
			what string
			r    result
		}{"index a", r}
	})
	wg.Go(func() {
		for i := range 4 {
			for _, args := range [][]string{{"--rehash", b}, {"manifest"}, {"verify", b}} {
				r := a15f(t, work, append([]string{"--db", db}, args...)...)
				results <- struct {
					what string
					r    result
				}{fmt.Sprint(i, args), r}
			}
		}
	})
	wg.Wait()
	close(results)
	for x := range results {
		if x.r.code != 0 {
			a15fOneLineNaming(t, x.what+" while another run writes", x.r, db)
		}
	}
	a15fOK(t, work, "--db", db, a, b)
	m := a15fOK(t, work, "--db", db, "manifest")
	ea, na := a15fExpect(t, a)
	eb, nb := a15fExpect(t, b)
	_ = ea
	_ = eb
	if bad := a15fCheck(t, "sha256sum", "/", m.stdout, na+nb); bad != "" {
		t.Errorf("sha256sum -c of the final manifest: %s", bad)
	}
}

// TestAttack15FxsumSmallDatabaseTruncated: a small index (two pages)
// truncated to 5000 bytes, as a copy cut short leaves it. An index run into
// it must refuse (exit 2, one line naming it) or leave a database whose
// manifest is right; exiting 0 and leaving one that manifest cannot read
// hides the damage until the manifest is needed.
func TestAttack15FxsumSmallDatabaseTruncated(t *testing.T) {
	root := a15fSmallTree(t, 3)
	work := t.TempDir()
	db := filepath.Join(work, "x.db")
	a15fOK(t, work, "--db", db, root)
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= 5000 {
		t.Skipf("database is %d bytes: too small to cut at 5000", fi.Size())
	}
	if err := os.Truncate(db, 5000); err != nil {
		t.Fatal(err)
	}
	exp, _ := a15fExpect(t, root)
	r := a15f(t, work, "--db", db, root)
	if r.code != 0 {
		a15fOneLineNaming(t, "index into a truncated database", r, db)
		return
	}
	m := a15f(t, work, "--db", db, "manifest", "--root", root)
	if m.code != 0 || m.stdout != exp {
		t.Errorf("index into a truncated database exited 0; then manifest: exit %d, stderr %q, %d lines (want %d)",
			m.code, m.stderr, len(a15fLines(m.stdout)), len(a15fLines(exp)))
	}
}
