package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAttack12_ReadOnlyReaderWhileAnotherRunWrites: root indexes a tree
// again and again (it changes between the runs) while an unprivileged user,
// who may read the database but not write it or its folder, prints the
// manifest again and again. Each manifest must be either a state of the
// index (sorted, one line a file, every digest one the file had) with exit
// 0, or one line with exit 2 ("a run ... under way"): never an error of
// another kind, a torn read, nor a line of a file with a digest it never had.
func TestAttack12_ReadOnlyReaderWhileAnotherRunWrites(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	work := filepath.Join(root, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(work, "shared.db")
	known := make(map[string]map[string]bool) // path -> digests it had
	old := time.Now().Add(-time.Hour)
	gen := func(round int) {
		for d := range 12 {
			dir := filepath.Join(tree, fmt.Sprintf("d%02d", d))
			if (round+d)%3 == 0 {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if (round+d)%3 == 2 && round > 0 {
				continue // unchanged
			}
			for f := range 150 {
				p := filepath.Join(dir, fmt.Sprintf("file-%03d", f))
				b := fmt.Appendf(nil, "round %d dir %d file %d %s", round, d, f, strings.Repeat("x", f))
				a11write(t, p, b, old.Add(time.Duration(round)*time.Second))
				s := sha256.Sum256(b)
				if known[p] == nil {
					known[p] = make(map[string]bool)
				}
				known[p][hex.EncodeToString(s[:])] = true
			}
		}
	}
	gen(0)
	a11ok(t, work, "--db", dbFile, "--quiet", tree)
	a12readOnlyFolder(t, work, tree)

	const rounds = 25
	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		writeErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		for round := 1; round <= rounds; round++ {
			gen(round)
			r, hung := a12run(t, command(t, work, a11env(), "--db", dbFile, "--quiet", tree), 5*time.Minute)
			if hung || r.code != 0 {
				writeErr = fmt.Errorf("writer round %d: exit %d (hung %v): %s", round, r.code, hung, r.stderr)
				return
			}
		}
	}()
	// known is written by gen only, before each writer run; the reader
	// checks against a copy taken under no lock, so wait: read it after.
	type read struct {
		r result
		n int
	}
	var reads []read
	n := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		r, hung := a12run(t, a12cmd(t, work, true, "--db", dbFile, "manifest"), 2*time.Minute)
		if hung {
			t.Errorf("manifest read %d hung; stderr:\n%s", n, r.stderr)
			break
		}
		reads = append(reads, read{r, n})
		n++
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	ok, refused := 0, 0
	var bad []string
	for _, rd := range reads {
		r := rd.r
		switch r.code {
		case 2:
			if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 {
				bad = append(bad, fmt.Sprintf("read %d: exit 2 with %d lines:\n%s", rd.n, len(lines), r.stderr))
			}
			refused++
		case 0:
			ok++
			prev := ""
			for _, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
				if l == "" {
					continue
				}
				dig, p, found := strings.Cut(l, "  ")
				if !found {
					bad = append(bad, fmt.Sprintf("read %d: line %q", rd.n, l))
					continue
				}
				if p <= prev {
					bad = append(bad, fmt.Sprintf("read %d: %q after %q: not sorted or twice", rd.n, p, prev))
				}
				prev = p
				if !known[p][dig] {
					bad = append(bad, fmt.Sprintf("read %d: %q with digest %s it never had", rd.n, p, dig))
				}
			}
		default:
			bad = append(bad, fmt.Sprintf("read %d: exit %d, want 0 or 2; stderr:\n%s", rd.n, r.code, r.stderr))
		}
	}
	t.Logf("%d manifests during %d writer runs: %d printed, %d refused", len(reads), rounds, ok, refused)
	if len(bad) > 0 {
		if len(bad) > 8 {
			bad = append(bad[:8], fmt.Sprintf("... and %d more", len(bad)-8))
		}
		t.Errorf("a read-only reader while root writes:\n%s", strings.Join(bad, "\n"))
	}
	// The last state: a manifest of everything, as the unprivileged user.
	final := a12user(t, work, "--db", dbFile, "manifest")
	if final.code != 0 {
		t.Errorf("manifest after the writer ended: exit %d; stderr:\n%s", final.code, final.stderr)
	}
}

// a12fxsumDB is a small tree and its index made by root (or the user).
func a12fxsumDB(t *testing.T, n int) (tree, work, dbFile string) {
	t.Helper()
	tree = a11small(t, n)
	work = t.TempDir()
	dbFile = filepath.Join(work, "ro.db")
	a11ok(t, work, "--db", dbFile, "--quiet", tree)
	return tree, work, dbFile
}

// TestAttack12_ReadOnlyWithSideFiles: a read-only database (the file 0444
// in a folder the user may not write) with an empty -wal, an empty
// -journal, a -shm left beside it, or a -journal whose header is zeroed
// (what SQLite's journal_mode=PERSIST leaves after every commit: no
// transaction to roll back, so SQLite does not treat it as hot; manifest
// refused it as holding "changes not in the database yet", and the user,
// who may not write the folder, could not remove it): manifest and verify
// print the right results, exit 0, and leave the folder as it was byte for
// byte; indexing into it is one line, exit 2. Made writable again, it
// indexes normally.
func TestAttack12_ReadOnlyWithSideFiles(t *testing.T) {
	for _, side := range []struct {
		name  string
		files []string
		size  int // of each file, zero bytes
	}{
		{"-wal", []string{"-wal"}, 0},
		{"-journal", []string{"-journal"}, 0},
		{"-wal-shm", []string{"-wal", "-shm"}, 0},
		{"-shm", []string{"-shm"}, 0},
		{"-journal-zeroed", []string{"-journal"}, 512},
	} {
		t.Run(side.name, func(t *testing.T) {
			tree, work, dbFile := a12fxsumDB(t, 12)
			for _, s := range side.files {
				if err := os.WriteFile(dbFile+s, make([]byte, side.size), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dbFile, 0o444); err != nil {
				t.Fatal(err)
			}
			a12readOnlyFolder(t, work, tree)
			before := a12snapshot(t, work)
			m := a12user(t, work, "--db", dbFile, "manifest")
			if m.code != 0 {
				t.Errorf("manifest: exit %d, want 0; stderr:\n%s", m.code, m.stderr)
			} else if bad := a11check(t, "sha256sum", "/", m.stdout, 12); bad != "" {
				t.Errorf("manifest: sha256sum -c: %s", bad)
			}
			if v := a12user(t, work, "--db", dbFile, "verify"); v.code != 0 {
				t.Errorf("verify: exit %d, want 0; stderr:\n%s", v.code, v.stderr)
			}
			a12oneLine(t, "index into it", a12user(t, work, "--db", dbFile, "--quiet", tree))
			a12sameFolder(t, "manifest, verify and index of a read-only database", work, before)
			// Writable again: index as root (or the user) normally.
			if err := os.Chmod(work, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dbFile, 0o644); err != nil {
				t.Fatal(err)
			}
			a11write(t, filepath.Join(tree, "added"), []byte("new"), time.Now().Add(-time.Hour))
			r := a11ok(t, work, "--db", dbFile, tree)
			if s := parseSummary(t, r.stderr); s.hashed != 1 || s.skipped != 12 {
				t.Errorf("index after the read: %+v, want 1 hashed, 12 skipped", s)
			}
		})
	}
}

// TestAttack12_ReadOnlyOddDatabases: read-only files that are not a usable
// fxsum database (corrupt, another program's, empty, truncated), and a
// symbolic link to a good read-only one: manifest and verify give the right
// result or one line with exit 2, never hang, and leave the folder as it
// was; indexing into them is one line, exit 2.
func TestAttack12_ReadOnlyOddDatabases(t *testing.T) {
	tree, work0, good := a12fxsumDB(t, 9)
	goodBytes := readAll(t, good)
	other := filepath.Join(work0, "other.db")
	func() {
		db, err := sql.Open("sqlite", other)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('mine')`); err != nil {
			t.Fatal(err)
		}
	}()
	otherBytes := readAll(t, other)
	corrupt := append([]byte(nil), goodBytes...)
	for i := 4096; i < len(corrupt); i++ { // page 2 onwards is garbage
		corrupt[i] = byte(i * 7)
	}
	tests := []struct {
		name    string
		content []byte
		link    bool // a symbolic link to it, not the file
		wantOK  bool // manifest and verify succeed
	}{
		{"Empty", nil, false, false},
		{"Garbage", []byte(strings.Repeat("not a database\n", 500)), false, false},
		{"HeaderOnly", goodBytes[:100], false, false},
		{"Truncated", goodBytes[:len(goodBytes)/2], false, false},
		{"CorruptPages", corrupt, false, false},
		{"OtherProgram", otherBytes, false, false},
		{"SymlinkToGood", goodBytes, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			target := filepath.Join(work, "target.db")
			if err := os.WriteFile(target, tt.content, 0o444); err != nil {
				t.Fatal(err)
			}
			dbArg := target
			if tt.link {
				dbArg = filepath.Join(work, "link.db")
				if err := os.Symlink("target.db", dbArg); err != nil {
					t.Fatal(err)
				}
			}
			a12readOnlyFolder(t, work, tree)
			before := a12snapshot(t, work)
			for _, cmd := range []string{"manifest", "verify"} {
				r := a12user(t, work, "--db", dbArg, cmd)
				if tt.wantOK {
					if r.code != 0 {
						t.Errorf("%s: exit %d, want 0; stderr:\n%s", cmd, r.code, r.stderr)
					} else if cmd == "manifest" {
						if bad := a11check(t, "sha256sum", "/", r.stdout, 9); bad != "" {
							t.Errorf("manifest: sha256sum -c: %s", bad)
						}
					}
					continue
				}
				a12oneLine(t, cmd, r)
				if r.code == 2 && !strings.Contains(r.stderr, "target.db") {
					t.Errorf("%s: the line does not name the file: %s", cmd, r.stderr)
				}
			}
			a12oneLine(t, "index into it", a12user(t, work, "--db", dbArg, "--quiet", tree))
			a12sameFolder(t, tt.name, work, before)
		})
	}
}

// TestAttack12_ReadOnlyReaderPausedWhileAnotherRunWrites: an unprivileged
// user prints the manifest of a database that root indexes into, into a
// pipe read slowly (`fxsum manifest | less`): the manifest starts, root's
// run removes half the folders and adds others, and the rest of the
// manifest is read after. What the reader prints must be one state of the
// index — the one before the run or the one after — or one line with exit
// 2, never a mix of the two, rows out of order, or an error of another
// kind.
func TestAttack12_ReadOnlyReaderPausedWhileAnotherRunWrites(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	work := filepath.Join(root, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(work, "shared.db")
	old := time.Now().Add(-time.Hour)
	state := func(prefix string, dirs int) map[string]string {
		m := make(map[string]string)
		for d := range dirs {
			for f := range 100 {
				p := filepath.Join(tree, fmt.Sprintf("%s%02d", prefix, d), fmt.Sprintf("file-%03d", f))
				b := fmt.Appendf(nil, "%s %d %d", prefix, d, f)
				a11write(t, p, b, old)
				s := sha256.Sum256(b)
				m[p] = hex.EncodeToString(s[:])
			}
		}
		return m
	}
	before := state("a", 40) // 4000 files
	a11ok(t, work, "--db", dbFile, "--quiet", tree)
	a12readOnlyFolder(t, work, tree)

	cmd := a12cmd(t, work, true, "--db", dbFile, "manifest")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// Read the first line, then nothing until root's run is over.
	first := make([]byte, 1)
	if _, err := pr.Read(first); err != nil {
		t.Fatalf("manifest printed nothing: %v; stderr:\n%s", err, errb.String())
	}
	time.Sleep(500 * time.Millisecond) // let it fill the pipe (not an assertion)

	// Root's run: every other folder removed, others added between them.
	for d := 0; d < 40; d += 2 {
		if err := os.RemoveAll(filepath.Join(tree, fmt.Sprintf("a%02d", d))); err != nil {
			t.Fatal(err)
		}
	}
	added := state("a0", 10) // a000..a009: sort among the old ones
	a11ok(t, work, "--db", dbFile, "--quiet", tree)
	after := make(map[string]string)
	for p, d := range before {
		if _, err := os.Stat(p); err == nil {
			after[p] = d
		}
	}
	for p, d := range added {
		after[p] = d
	}

	rest, _ := readAllFrom(pr)
	pr.Close()
	werr := cmd.Wait()
	out := string(first) + rest
	code := cmd.ProcessState.ExitCode()
	_ = werr
	switch code {
	case 2:
		a12oneLine(t, "manifest read while root's run wrote", result{code: code, stderr: errb.String()})
		return
	case 0:
	default:
		t.Fatalf("manifest read while root's run wrote: exit %d, want 0 or 2; stderr:\n%s", code, errb.String())
	}
	got := make(map[string]string)
	var bad []string
	prev := ""
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		dig, p, _ := strings.Cut(l, "  ")
		if p <= prev {
			bad = append(bad, fmt.Sprintf("%q after %q", p, prev))
		}
		prev = p
		got[p] = dig
	}
	same := func(want map[string]string) bool {
		if len(want) != len(got) {
			return false
		}
		for p, d := range want {
			if got[p] != d {
				return false
			}
		}
		return true
	}
	t.Logf("manifest: %d lines; the state before: %v, after: %v", len(got), same(before), same(after))
	if !same(before) && !same(after) {
		inBefore, inAfter, neither := 0, 0, 0
		for p, d := range got {
			switch {
			case before[p] == d && after[p] == d:
			case before[p] == d:
				inBefore++
			case after[p] == d:
				inAfter++
			default:
				neither++
			}
		}
		t.Errorf("manifest read while root's run wrote: exit 0 with %d lines (%d rows before the run, %d after), "+
			"which is neither state: %d rows only the state before has, %d only the state after, %d neither; out of order: %d %v",
			len(got), len(before), len(after), inBefore, inAfter, neither, len(bad), bad[:min(3, len(bad))])
	}
}

// readAllFrom reads r to its end.
func readAllFrom(r *os.File) (string, error) {
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

// a12corrupt is good with every byte after its first page replaced.
func a12corrupt(good []byte) []byte {
	b := append([]byte(nil), good...)
	for i := 4096; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// TestAttack12_CorruptDatabaseIsOneLine: an fxsum database whose pages
// after the first are garbage (a bad disk, a torn copy), owned and writable
// by the user. The README: "A database that cannot be used is one line that
// names the file and the cause, with exit status 2: ... a corrupt one".
// Today manifest and verify exit 1 with "fxsum: manifest: database disk
// image is malformed (11)", which does not name the file, and index exits 1
// with three lines, none naming the database.
func TestAttack12_CorruptDatabaseIsOneLine(t *testing.T) {
	tree, work, dbFile := a12fxsumDB(t, 6)
	if err := os.WriteFile(dbFile, a12corrupt(readAll(t, dbFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := a12snapshot(t, work)
	for _, args := range [][]string{{"manifest"}, {"verify"}, {"--quiet", tree}} {
		r := fxsum(t, work, a11env(), append([]string{"--db", dbFile}, args...)...)
		a12oneLine(t, args[0], r)
		if !strings.Contains(r.stderr, dbFile) {
			t.Errorf("%s: stderr does not name %s:\n%s", args[0], dbFile, r.stderr)
		}
	}
	a12sameFolder(t, "a corrupt database", work, before)
}

// TestAttack12_ReadOnlyWithCommittedWAL: a read-only database whose -wal
// holds committed rows that are not in the database file yet (a run killed
// before its checkpoint, then the folder made read-only, or a copy on
// read-only media). manifest and verify may print the index with those
// rows, or refuse with one line, exit 2; never print the index without
// them as if it were whole. The folder is left as it was.
func TestAttack12_ReadOnlyWithCommittedWAL(t *testing.T) {
	tree, _, dbFile := a12fxsumDB(t, 8)
	// Commit one more row through SQLite, and keep the -wal: copy the
	// three files while the connection is open, as a crash leaves them.
	extra := filepath.Join(tree, "extra")
	a11write(t, extra, []byte("extra file"), time.Now().Add(-time.Hour))
	snap := t.TempDir()
	func() {
		db, err := sql.Open("sqlite", dbFile)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		for _, q := range []string{
			`PRAGMA wal_autocheckpoint = 0`,
			`INSERT INTO files SELECT dir, 'extra', 10, mtime_ns, algo, digest, indexed_ns FROM files LIMIT 1`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(dbFile + s)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			if err := os.WriteFile(filepath.Join(snap, "ro.db"+s), b, 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if fi, err := os.Stat(filepath.Join(snap, "ro.db-wal")); err != nil || fi.Size() == 0 {
		t.Skipf("no -wal with content to test: %v", err)
	}
	a12readOnlyFolder(t, snap, tree)
	before := a12snapshot(t, snap)
	db := filepath.Join(snap, "ro.db")
	for _, cmd := range []string{"manifest", "verify"} {
		r := a12user(t, snap, "--db", db, cmd)
		switch r.code {
		case 2:
			a12oneLine(t, cmd, r)
		case 0, 1:
			if cmd == "manifest" && !strings.Contains(r.stdout, extra+"\n") {
				t.Errorf("manifest: exit %d without the row committed in the -wal:\n%s", r.code, r.stdout)
			}
			if cmd == "verify" && !strings.Contains(r.stdout+r.stderr, "extra") {
				t.Errorf("verify: exit %d without the row committed in the -wal; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
		default:
			t.Errorf("%s: exit %d; stderr:\n%s", cmd, r.code, r.stderr)
		}
	}
	a12sameFolder(t, "manifest and verify with a committed -wal", snap, before)
}

// TestAttack12_ReadOnlyBindMount: a database on a read-only bind mount
// (root may not write it either): manifest and verify work and leave it as
// it was; index is one line, exit 2. Needs root and a mount namespace.
func TestAttack12_ReadOnlyBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare")
	}
	tree, work, dbFile := a12fxsumDB(t, 7)
	before := a12snapshot(t, work)
	script := `set -e; mount --bind "$1" "$1"; mount -o remount,ro,bind "$1"; shift
if touch "$WORK/probe" 2>/dev/null; then echo writable; exit 77; fi
set +e
"$@" manifest; echo "rc=$?" >&2
"$@" verify; echo "rc=$?" >&2
"$@" --quiet "$TREE"; echo "rc=$?" >&2`
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", work, fxsumBin, "--db", dbFile)
	cmd.Env = append(os.Environ(), append(a11env(), "WORK="+work, "TREE="+tree)...)
	r, hung := a12run(t, cmd, 3*time.Minute)
	if hung {
		t.Fatal("hung")
	}
	if r.code == 77 || strings.Contains(r.stderr, "mount:") || strings.Contains(r.stderr, "unshare:") {
		t.Skipf("cannot make a read-only bind mount here: %s", r.stderr)
	}
	if bad := a11check(t, "sha256sum", "/", r.stdout, 7); bad != "" {
		t.Errorf("manifest on a read-only mount: sha256sum -c: %s\nstderr:\n%s", bad, r.stderr)
	}
	for _, want := range []string{"rc=0\n", "rc=0\n", "rc=2\n"} {
		i := strings.Index(r.stderr, "rc=")
		if i < 0 || !strings.HasPrefix(r.stderr[i:], want) {
			t.Errorf("manifest, verify, index on a read-only mount: want exits 0, 0, 2; stderr:\n%s", r.stderr)
			break
		}
		r.stderr = r.stderr[i+len(want):]
	}
	a12sameFolder(t, "read-only mount", work, before)
}
