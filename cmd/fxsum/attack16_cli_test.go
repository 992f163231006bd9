package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad usage: exit 2, nothing on stdout, one line on stderr, and no database
// made.
func TestA16fBadUsageIsExit2OneLine(t *testing.T) {
	base := a16fDir(t)
	a16fWrite(t, filepath.Join(base, "r", "f"), "f\n")
	db := "fresh.db"
	cases := [][]string{
		{"--db", db},                                 // no PATH
		{"index", "--db", db},                        // no PATH
		{"--db", db, "--workers", "0", "r"},          // below 1
		{"--db", db, "--workers", "257", "r"},        // above 256
		{"--db", db, "--workers", "-3", "r"},         //
		{"--db", db, "--workers", "two", "r"},        //
		{"--db", db, "--algo", "md5", "r"},           //
		{"--db", db, "--algo", "", "r"},              //
		{"--db", db, "--listen", "127.0.0.1:0", "r"}, // without --queue embedded
		{"--db", db, "--idle-timeout", "5s", "r"},    // without --queue
		{"--db", db, "--queue", "", "r"},             // empty
		{"--db", db, "--queue", "embedded", "--listen", "", "r"},
		{"--db", db, "--queue", "embedded", "--idle-timeout", "0s", "r"},
		{"--db", db, "--root", "r", "r"},              // manifest only
		{"--db", db, "--exclude", "", "r"},            // empty pattern
		{"--db", db, "--exclude", "[", "r"},           // bad pattern
		{"--db", db, "--log-level", "loud", "r"},      //
		{"--db", db, "--no-such-flag", "r"},           //
		{"manifest", "--db", db, "--rehash"},          // index only
		{"manifest", "--db", db, "--workers", "2"},    // index, verify only
		{"manifest", "--db", db, "--root", "missing"}, // DIR must exist
		{"manifest", "--db", db, "--root", "r/f"},     // not a folder
		{"manifest", "--db", db, "extra"},             //
		{"verify", "--db", db, "--algo", "sha256"},    //
		{"verify", "--db", db, "--workers", "0"},      //
		{"verify", "--db", db, "--exclude", "x"},      //
		{"worker"},                                    // no --queue
		{"worker", "--queue", "embedded"},             // index only
		{"worker", "--queue", "nats://127.0.0.1:1", "--workers", "0"},
		{"worker", "--queue", "nats://127.0.0.1:1", "--workers", "257"},
		{"worker", "--queue", "nats://127.0.0.1:1", "--rehash"},
	}
	for _, args := range cases {
		r := a16fRun(t, base, args...)
		lines := a16fLines(r.Err)
		if r.Code != 2 || r.Out != "" || len(lines) != 1 {
			t.Errorf("fxsum %q: want exit 2, empty stdout, one line on stderr; got %v", args, r)
		}
	}
	if _, err := os.Stat(filepath.Join(base, db)); err == nil {
		t.Errorf("a refused command made the database %s", db)
	}
}

// --workers at its bounds works, for index and verify; a command before or
// after the flags means the same.
func TestA16fWorkersBoundsAndCommandPosition(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 3, 40)
	db := filepath.Join(base, "x.db")
	for _, w := range []string{"1", "256"} {
		if r := a16fRun(t, base, "--db", db, "--rehash", "--workers", w, root); r.Code != 0 {
			t.Errorf("index --workers %s: %v", w, r)
		}
		if r := a16fRun(t, base, "verify", "--db", db, "--workers", w); r.Code != 0 {
			t.Errorf("verify --workers %s: %v", w, r)
		}
	}
	a := a16fRun(t, base, "--db", db, "manifest")
	b := a16fRun(t, base, "manifest", "--db", db)
	if a.Code != 0 || a.Out != b.Out || a.Out == "" {
		t.Errorf("fxsum --db x manifest and fxsum manifest --db x differ:\n%v\n%v", a, b)
	}
	// a folder named like a command, written ./manifest
	a16fWrite(t, filepath.Join(base, "manifest", "in"), "in\n")
	if r := a16fRun(t, base, "--db", db, "./manifest"); r.Code != 0 {
		t.Errorf("index ./manifest: %v", r)
	}
	if m := a16fManifest(t, base, db); m[filepath.Join(base, "manifest", "in")] == "" {
		t.Errorf("./manifest was not indexed")
	}
}

// verify: changed (same size and time), missing, unreadable (a folder now),
// PATH arguments that select by folder, even with names that are wildcards to
// SQL (_ and %), a PATH with nothing indexed is an error; the database is not
// modified.
func TestA16fVerifyReportsAndSelects(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	names := []string{"a_c/f", "abc/f", "a%c/f", "aXc/f", "a/f", "ab/f", "a.txt", "keep"}
	for _, n := range names {
		a16fWrite(t, filepath.Join(root, n), n+"\n")
		a16fOld(t, filepath.Join(root, n), 0)
	}
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	// abc/f: same size, same time, other content
	a16fWrite(t, filepath.Join(root, "abc/f"), "ABC/f\n")
	a16fOld(t, filepath.Join(root, "abc/f"), 0)
	// a/f: gone; ab/f: a folder now
	_ = os.Remove(filepath.Join(root, "a/f"))
	_ = os.Remove(filepath.Join(root, "ab/f"))
	_ = os.Mkdir(filepath.Join(root, "ab/f"), 0o755)
	before := a16fFileBytes(t, db)

	v := a16fRun(t, base, "verify", "--db", db)
	want := []string{
		"changed: " + filepath.Join(root, "abc/f"),
		"missing: " + filepath.Join(root, "a/f"),
		"unreadable: " + filepath.Join(root, "ab/f"),
	}
	if v.Code != 1 {
		t.Errorf("verify with problems: want exit 1, got %v", v)
	}
	for _, w := range want {
		if !strings.Contains(v.Out, w) {
			t.Errorf("verify output lacks %q:\n%s", w, v.Out)
		}
	}
	if n := len(a16fLines(v.Out)); n != 3 {
		t.Errorf("verify printed %d lines, want 3:\n%s", n, v.Out)
	}
	for _, sel := range []struct {
		path  string
		code  int
		lines int
	}{
		{"a_c", 0, 0}, // not abc
		{"a%c", 0, 0}, // not abc, aXc
		{"a_c/", 0, 0},
		{"abc", 1, 1},
		{"a", 1, 1},     // a/f only, not ab/ or abc/ or a.txt
		{"a.txt", 0, 0}, // a file
		{"keep", 0, 0},  // a file
		{"r/ab/../abc", 1, 1},
	} {
		p := filepath.Join(root, sel.path)
		if strings.HasPrefix(sel.path, "r/") {
			p = sel.path // relative to base
		}
		r := a16fRun(t, base, "verify", "--db", db, p)
		if r.Code != sel.code || len(a16fLines(r.Out)) != sel.lines {
			t.Errorf("verify %s: want exit %d and %d lines; got %v", sel.path, sel.code, sel.lines, r)
		}
		if m := fmt.Sprintf("verified %d files", 1); !strings.Contains(r.Err, m) {
			t.Errorf("verify %s checked other than 1 file: %s", sel.path, r.Err)
		}
	}
	r := a16fRun(t, base, "verify", "--db", db, filepath.Join(root, "nothing-here"))
	if r.Code == 0 || !strings.Contains(r.Err, "nothing-here") {
		t.Errorf("verify of a PATH with nothing indexed: want an error naming it, got %v", r)
	}
	if !bytes.Equal(before, a16fFileBytes(t, db)) {
		t.Errorf("verify modified the database")
	}
	// a plain rerun keeps the stale digest of abc/f (rsync's quick check, as
	// documented); --rehash finds it
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	after := a16fExpected(t, "sha256", root)
	if a16fManifest(t, base, db)[filepath.Join(root, "abc/f")] == after[filepath.Join(root, "abc/f")] {
		t.Logf("note: a plain rerun caught the same-size, same-time replacement")
	}
	if r := a16fRun(t, base, "--db", db, "--rehash", root); r.Code != 0 {
		t.Fatal(r)
	}
	a16fSameMap(t, "after --rehash", a16fManifest(t, base, db), after)
}
