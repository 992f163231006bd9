package main

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// a16fOneLine checks a refusal: the exit status, nothing on stdout, one line
// on stderr that names the file.
func a16fOneLine(t *testing.T, what string, r a16fResult, code int, name string) {
	t.Helper()
	lines := a16fLines(r.Err)
	if r.Code != code || r.Out != "" || len(lines) != 1 || !strings.Contains(r.Err, name) {
		t.Errorf("%s: want exit %d and one line naming %s; got %v", what, code, name, r)
	}
}

// Every database that cannot be used: one line naming it, exit 2, for index,
// manifest and verify; the file left as it was, nothing made beside it.
func TestA16fBadDatabasesAreOneLineExit2(t *testing.T) {
	base := a16fDir(t)
	a16fWrite(t, filepath.Join(base, "r", "f"), "f\n")
	good := filepath.Join(base, "good.db")
	if r := a16fRun(t, base, "--db", good, "r"); r.Code != 0 {
		t.Fatal(r)
	}
	mk := func(name string, fill func(p string)) string {
		p := filepath.Join(base, "bad", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		fill(p)
		return p
	}
	sqlite := func(p string, stmts ...string) {
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	cases := map[string]string{
		"folder missing": filepath.Join(base, "nope", "x.db"),
		"a folder":       mk("dir.db", func(p string) { _ = os.Mkdir(p, 0o755) }),
		"a FIFO":         mk("fifo.db", func(p string) { _ = syscall.Mkfifo(p, 0o644) }),
		"random bytes": mk("random.db", func(p string) {
			_ = os.WriteFile(p, bytes.Repeat([]byte("not a database\x00\x01"), 500), 0o644)
		}),
		"text file": mk("notes.txt", func(p string) { _ = os.WriteFile(p, []byte("my notes\n"), 0o644) }),
		"foreign SQLite": mk("foreign.db", func(p string) {
			sqlite(p, "create table t(x)", "insert into t values (1)")
		}),
		"foreign SQLite in WAL mode with a files table": mk("foreignwal.db", func(p string) {
			sqlite(p, "pragma journal_mode=wal", "create table files(dir, name)", "insert into files values ('a','b')")
		}),
		"newer fxsum": mk("newer.db", func(p string) {
			b, _ := os.ReadFile(good)
			_ = os.WriteFile(p, b, 0o644)
			sqlite(p, "pragma user_version=7")
		}),
		"truncated fxsum database": mk("trunc.db", func(p string) {
			b, _ := os.ReadFile(good)
			_ = os.WriteFile(p, b[:100], 0o644)
		}),
	}
	read := func(p string) []byte {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			return nil // a FIFO would block
		}
		b, _ := os.ReadFile(p)
		return b
	}
	for what, p := range cases {
		before := read(p)
		dirBefore := a16fListDir(t, filepath.Join(base, "bad"))
		for _, args := range [][]string{{"--db", p, "r"}, {"manifest", "--db", p}, {"verify", "--db", p}} {
			r := a16fRunOpt(t, a16fOpts{Dir: base, Timeout: 30 * time.Second}, args...)
			a16fOneLine(t, what+": "+args[0], r, 2, p)
		}
		after := read(p)
		if !bytes.Equal(before, after) {
			t.Errorf("%s: the file was modified", what)
		}
		if got := a16fListDir(t, filepath.Join(base, "bad")); strings.Join(got, "|") != strings.Join(dirBefore, "|") {
			t.Errorf("%s: the folder changed from %q to %q", what, dirBefore, got)
		}
	}
}

// "A database that cannot be used is one line that names the file and the
// cause, with exit status 2: ... a corrupt one". Here an fxsum database whose
// table lost its columns (a damaged schema).
func TestA16fDamagedSchemaIsOneLineExit2(t *testing.T) {
	base := a16fDir(t)
	a16fWrite(t, filepath.Join(base, "r", "f"), "f\n")
	p := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", p, "r"); r.Code != 0 {
		t.Fatal(r)
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"drop table files", "create table files(x)", "insert into files values (1)"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for _, args := range [][]string{{"--db", p, "r"}, {"manifest", "--db", p}, {"verify", "--db", p}} {
		r := a16fRun(t, base, args...)
		a16fOneLine(t, "damaged schema: "+args[0], r, 2, p)
	}
}

// Read-only database (as nobody): index refuses it with one line, exit 2;
// manifest and verify read it and leave nothing beside it.
func TestA16fReadOnlyDatabaseAsNobody(t *testing.T) {
	a16fNeedRoot(t)
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 2, 20)
	dbdir := filepath.Join(base, "db")
	if err := os.Mkdir(dbdir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dbdir, "x.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	before := a16fFileBytes(t, db)
	list := a16fListDir(t, dbdir)
	r := a16fRunOpt(t, a16fOpts{Dir: base, Nobody: true}, "--db", db, root)
	a16fOneLine(t, "index into a read-only database", r, 2, db)
	m := a16fRunOpt(t, a16fOpts{Dir: base, Nobody: true}, "manifest", "--db", db)
	if m.Code != 0 {
		t.Fatalf("manifest of a read-only database: %v", m)
	}
	got, _ := a16fParse(t, m.Out)
	a16fSameMap(t, "read-only manifest", got, a16fExpected(t, "sha256", root))
	v := a16fRunOpt(t, a16fOpts{Dir: base, Nobody: true}, "verify", "--db", db)
	if v.Code != 0 || v.Out != "" {
		t.Errorf("verify of a read-only database: %v", v)
	}
	if !bytes.Equal(before, a16fFileBytes(t, db)) {
		t.Errorf("the read-only database changed")
	}
	if got := a16fListDir(t, dbdir); strings.Join(got, "|") != strings.Join(list, "|") {
		t.Errorf("files appeared beside the database: %q -> %q", list, got)
	}
}

// Unreadable files and folders (as nobody): named, exit 1, the rest indexed;
// their rows are kept (they are not gone); verify says unreadable; once
// readable, the next run is clean.
func TestA16fUnreadableFilesAndFoldersAsNobody(t *testing.T) {
	a16fNeedRoot(t)
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	for _, f := range []string{"open/a", "locked/b", "locked/deeper/c", "secret", "plain"} {
		a16fWrite(t, filepath.Join(root, f), f+"\n")
		a16fOld(t, filepath.Join(root, f), 0)
	}
	dbdir := filepath.Join(base, "db")
	if err := os.Mkdir(dbdir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dbdir, 0o777); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dbdir, "x.db")
	nob := a16fOpts{Dir: base, Nobody: true}
	if r := a16fRunOpt(t, nob, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	all := a16fExpected(t, "sha256", root)
	if err := os.Chmod(filepath.Join(root, "locked"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "secret"), 0, 0); err != nil {
		t.Fatal(err)
	}
	// its time changes, so that the quick check must read it
	a16fOld(t, filepath.Join(root, "secret"), time.Hour)
	r := a16fRunOpt(t, nob, "--db", db, root)
	if r.Code != 1 || !strings.Contains(r.Err, filepath.Join(root, "locked")) || !strings.Contains(r.Err, filepath.Join(root, "secret")) {
		t.Errorf("unreadable file and folder: want exit 1 naming both, got %v", r)
	}
	m := a16fRunOpt(t, nob, "manifest", "--db", db)
	got, _ := a16fParse(t, m.Out)
	// the secret's row may go or stay (it changed and could not be read);
	// the rows of the locked folder's files, which are not gone, stay
	delete(all, filepath.Join(root, "secret"))
	delete(got, filepath.Join(root, "secret"))
	a16fSameMap(t, "rows after a run that could not read some", got, all)
	v := a16fRunOpt(t, nob, "verify", "--db", db)
	if v.Code != 1 || !strings.Contains(v.Out, "unreadable: "+filepath.Join(root, "secret")) || !strings.Contains(v.Out, "unreadable: "+filepath.Join(root, "locked", "b")) {
		t.Errorf("verify of unreadable files: %v", v)
	}
	_ = os.Chmod(filepath.Join(root, "locked"), 0o755)
	_ = os.Chmod(filepath.Join(root, "secret"), 0o644)
	if r := a16fRunOpt(t, nob, "--db", db, root); r.Code != 0 {
		t.Errorf("once readable: %v", r)
	}
}

// Three runs at once on one new database: all succeed and the index is the
// union.
func TestA16fConcurrentRunsOnOneNewDatabase(t *testing.T) {
	base := a16fDir(t)
	a := filepath.Join(base, "A")
	b := filepath.Join(base, "B")
	a16fTree(t, a, 10, 300)
	a16fTree(t, b, 10, 300)
	db := filepath.Join(base, "x.db")
	for round := 0; round < 3; round++ {
		_ = os.Remove(db)
		_ = os.Remove(db + "-wal")
		_ = os.Remove(db + "-shm")
		ps := []*a16fProc{
			a16fStart(t, base, "--db", db, a),
			a16fStart(t, base, "--db", db, b),
			a16fStart(t, base, "--db", db, "--rehash", a, b),
		}
		for i, p := range ps {
			r, ok := p.Wait(120 * time.Second)
			if !ok {
				t.Fatalf("round %d run %d hangs", round, i)
			}
			if r.Code != 0 {
				t.Errorf("round %d run %d: %v", round, i, r)
			}
		}
		a16fSameMap(t, "concurrent runs", a16fManifest(t, base, db), a16fExpected(t, "sha256", a, b))
	}
}

// The database's disk fills up: "the run failed (one line: a database write,
// or a worker's resource that failed to open or close, named with its pool
// and worker)", exit 1; the database stays sound, and once there is room the
// next run completes it. The database lives on a small tmpfs mounted in a
// mount namespace of its own (unshare -m, as root).
func TestA16fDatabaseDiskFullIsOneLineExit1(t *testing.T) {
	a16fNeedRoot(t)
	a16fNeed(t, "unshare")
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 20, 500)
	dbdir := filepath.Join(base, "dbdir")
	if err := os.Mkdir(dbdir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dbdir, "x.db")
	bin := a16fBin(t)
	script := `set -u
mount -t tmpfs -o size=300k none "$DBDIR" || exit 99
"$BIN" --db "$DB" "$ROOT" 2>"$BASE/err1"; echo "rc1=$?"
mount -o remount,size=64m "$DBDIR" || exit 98
"$BIN" --db "$DB" "$ROOT" 2>"$BASE/err2"; echo "rc2=$?"
"$BIN" manifest --db "$DB" >"$BASE/manifest"; echo "rc3=$?"
`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DBDIR="+dbdir, "BIN="+bin, "DB="+db, "ROOT="+root, "BASE="+base)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && (ee.ExitCode() == 99 || ee.ExitCode() == 98) {
		t.Skipf("cannot mount a tmpfs in a new mount namespace: %s", out)
	}
	if err != nil {
		t.Skipf("unshare -m: %v %s", err, out)
	}
	o := string(out)
	err1, _ := os.ReadFile(filepath.Join(base, "err1"))
	lines := a16fLines(string(err1))
	if !strings.Contains(o, "rc1=1") || len(lines) != 1 {
		t.Errorf("a full disk under the database: want exit 1 and one line; got %s and %d lines:\n%s", strings.Fields(o)[0], len(lines), err1)
	}
	err2, _ := os.ReadFile(filepath.Join(base, "err2"))
	if !strings.Contains(o, "rc2=0") || !strings.Contains(o, "rc3=0") {
		t.Fatalf("once there is room: %s\n%s", o, err2)
	}
	got, _ := a16fParse(t, string(a16fFileBytes(t, filepath.Join(base, "manifest"))))
	a16fSameMap(t, "after the disk had room again", got, a16fExpected(t, "sha256", root))
}
