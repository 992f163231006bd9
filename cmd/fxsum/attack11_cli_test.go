package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// a11small is a small tree of n files an hour old.
func a11small(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for i := range n {
		a11write(t, filepath.Join(root, fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%03d", i)), []byte(fmt.Sprint("file ", i)), old)
	}
	return root
}

// TestAttack11_InterruptedWhileCreatingTheDatabase: Ctrl-C (or kill -9)
// right after fxsum is started on a new database. The README: "the next
// run resumes"; "a kill -9 leaves the database consistent". When the
// signal lands while the schema is being written, fxsum leaves the
// database with a hot rollback journal, and the next run refuses it, exit
// 2: "not an fxsum database (no files table); refusing to touch it" —
// and touches it all the same (SQLite rolls the journal back: the file is
// 0 bytes after the refusal, and the run after that one succeeds).
func TestAttack11_InterruptedWhileCreatingTheDatabase(t *testing.T) {
	tree := a11small(t, 40)
	work := t.TempDir()
	dbFile := filepath.Join(work, "new.db")
	rng := rand.New(rand.NewPCG(11, 11))
	hits := 0
	delay := 500 // µs after the file appears; moved towards the window
	for attempt := range 400 {
		for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
			if err := os.Remove(dbFile + suffix); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		cmd := command(t, work, a11env(), "--db", dbFile, "--quiet", tree)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		// Wait for the database file to appear, then signal the process
		// within a few milliseconds.
		appeared := false
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			if _, err := os.Lstat(dbFile); err == nil {
				appeared = true
				break
			}
			select {
			case <-done:
			default:
				time.Sleep(20 * time.Microsecond)
				continue
			}
			break
		}
		if appeared {
			time.Sleep(time.Duration(delay+rng.IntN(200)) * time.Microsecond)
		}
		sig := os.Signal(syscall.SIGINT)
		if attempt%2 == 1 {
			sig = os.Kill
		}
		_ = cmd.Process.Signal(sig)
		<-done
		// In the window: the schema's pages written, the journal not yet
		// deleted (before, the database is empty; after, it is made).
		jfi, jerr := os.Lstat(dbFile + "-journal")
		dfi, derr := os.Lstat(dbFile)
		switch {
		case derr == nil && dfi.Size() == 0: // too early: nothing written
			delay += 50 + rng.IntN(100)
			continue
		case jerr != nil || jfi.Size() == 0: // too late: committed
			delay = max(0, delay-50-rng.IntN(100))
			continue
		case derr != nil:
			continue
		}
		hits++
		size := int64(-1)
		if fi, err := os.Stat(dbFile); err == nil {
			size = fi.Size()
		}
		r, hung := a11(t, work, 5*time.Minute, "--db", dbFile, tree)
		if hung || r.code != 0 {
			after := int64(-1)
			if fi, err := os.Stat(dbFile); err == nil {
				after = fi.Size()
			}
			t.Fatalf("attempt %d: %v while the database was being created left %s (%d bytes) and %s-journal;\n"+
				"the next run: exit %d (hung %v), want 0 (it resumes); stderr:\n%s(the database is %d bytes after that run)",
				attempt, sig, filepath.Base(dbFile), size, filepath.Base(dbFile), r.code, hung, r.stderr, after)
		}
		if hits == 10 {
			return
		}
	}
	if hits > 0 {
		return
	}
	t.Skip("no signal landed while the schema was being written in 400 attempts")
}

// TestAttack11_FifoAsDatabase: --db naming a FIFO (a named pipe left by a
// script, or a typo) must be refused like /dev/null ("not a regular
// file", exit 2: "A database that cannot be used is one line that names
// the file and the cause"). index, manifest and verify block for ever
// opening it.
func TestAttack11_FifoAsDatabase(t *testing.T) {
	tree := a11small(t, 3)
	work := t.TempDir()
	fifo := filepath.Join(work, "pipe.db")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	all := [][]string{{tree}, {"manifest"}, {"verify"}}
	res := make([]result, len(all))
	hung := make([]bool, len(all))
	var wg sync.WaitGroup
	for i, args := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], hung[i] = a11(t, work, 30*time.Second, append([]string{"--db", fifo}, args...)...)
		}()
	}
	wg.Wait()
	for i, args := range all {
		r := res[i]
		if hung[i] {
			t.Errorf("fxsum --db FIFO %s: still running after 30 s (blocked opening the FIFO); want exit 2 and one line naming it", args[0])
			continue
		}
		if r.code != 2 || !strings.Contains(r.stderr, fifo) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("fxsum --db FIFO %s: exit %d, stderr %q; want 2 and one line naming %s", args[0], r.code, r.stderr, fifo)
		}
	}
}

// TestAttack11_LowOpenFileLimit: --help: "--workers N ... (default:
// GOMAXPROCS, or fewer if the limit of open files, ulimit -n, is low ...)".
// When not even one worker fits, the error must be actionable: today it
// says "use at most 0 workers", a value that --workers refuses ("want 1
// to 256"), and names "--workers 2" although the user gave no --workers.
func TestAttack11_LowOpenFileLimit(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	tree := a11small(t, 3)
	work := t.TempDir()
	limit := 0
	var r result
	// The lowest limit at which fxsum starts at all with one worker, less
	// one: no worker fits.
	for n := 40; n >= 12; n-- {
		cmd := exec.Command("sh", "-c", `ulimit -n "$1" && exec "$2" --db "$3" --quiet --workers 1 "$4"`, "sh", strconv.Itoa(n), fxsumBin, filepath.Join(work, strconv.Itoa(n)+".db"), tree)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), a11env()...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if cmd.ProcessState.ExitCode() != 0 {
			limit = n
			break
		}
	}
	if limit == 0 {
		t.Skip("fxsum ran with one worker at every limit down to 12")
	}
	cmd := exec.Command("sh", "-c", `ulimit -n "$1" && exec "$2" --db "$3" "$4"`, "sh", strconv.Itoa(limit), fxsumBin, filepath.Join(work, "default.db"), tree)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), a11env()...)
	r = runCmd(t, cmd)
	if r.code != 2 {
		t.Fatalf("ulimit -n %d, default workers: exit %d, want 2; stderr:\n%s", limit, r.code, r.stderr)
	}
	if m := regexp.MustCompile(`at most (-?\d+) workers?`).FindStringSubmatch(r.stderr); m != nil {
		if n, _ := strconv.Atoi(m[1]); n < 1 {
			t.Errorf("ulimit -n %d, no --workers given: the advice is %q, a value --workers refuses (1 to 256); stderr:\n%s", limit, m[0], r.stderr)
		}
	}
	if strings.Contains(r.stderr, "--workers ") {
		t.Errorf("ulimit -n %d, no --workers given: the error names a --workers the user did not give:\n%s", limit, r.stderr)
	}
}

// TestAttack11_ReadOnlyDatabaseCanBeRead: manifest only reads the
// database, and verify "does not modify the database": a database that
// the user may read but not write (an archived index, another user's,
// on read-only media) must still print its manifest and verify. Today
// both refuse it, exit 2, "is not writable" / "folder ... is not writable".
func TestAttack11_ReadOnlyDatabaseCanBeRead(t *testing.T) {
	tree := a11small(t, 10)
	work := t.TempDir()
	dbFile := filepath.Join(work, "ro.db")
	a11ok(t, work, "--db", dbFile, "--quiet", tree)
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(dbFile + suffix); err == nil {
			t.Fatalf("%s%s left after the run", dbFile, suffix)
		}
	}
	asUser := func(args ...string) result {
		t.Helper()
		cmd := command(t, work, a11env(), args...)
		if os.Geteuid() == 0 {
			asNobody(cmd)
		}
		return runCmd(t, cmd)
	}
	if os.Geteuid() == 0 {
		a11reach(t, filepath.Dir(fxsumBin), tree, work)
		if err := os.Chmod(work, 0o755); err != nil { // nobody may not write the folder
			t.Fatal(err)
		}
	} else if err := os.Chmod(work, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(work, 0o755) })
	if err := os.Chmod(dbFile, 0o444); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, dbFile)
	m := asUser("--db", dbFile, "manifest")
	if m.code != 0 {
		t.Errorf("manifest of a read-only database: exit %d, want 0; stderr:\n%s", m.code, m.stderr)
	} else if bad := a11check(t, "sha256sum", "/", m.stdout, 10); bad != "" {
		t.Errorf("manifest of a read-only database: sha256sum -c: %s", bad)
	}
	if v := asUser("--db", dbFile, "verify"); v.code != 0 {
		t.Errorf("verify of a read-only database: exit %d, want 0; stderr:\n%s", v.code, v.stderr)
	}
	// Writing into it stays an error: one line, exit 2.
	if r := asUser("--db", dbFile, tree); r.code != 2 {
		t.Errorf("index into a read-only database: exit %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	if after := readAll(t, dbFile); !bytes.Equal(before, after) {
		t.Errorf("the read-only database was modified")
	}
}

// TestAttack11_SignalsAtRandomMoments: SIGINT or SIGTERM at random moments
// of a first run and of a rerun with deletions and changes, then a rerun:
// the interrupted run exits 130 (or 0 if it was done), the index is
// consistent (integrity_check, no row with a wrong digest) and the next
// run completes it; nothing of an unchanged file is hashed again once it
// was committed.
func TestAttack11_SignalsAtRandomMoments(t *testing.T) {
	tr := genTree(t, 1200, 3<<20)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	rng := rand.New(rand.NewPCG(5, 5))
	interrupted := 0
	for round := range 8 {
		sig := syscall.SIGINT
		if round%2 == 1 {
			sig = syscall.SIGTERM
		}
		cmd := command(t, work, a11env(), tr.root)
		var errb bytes.Buffer
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the run has its database (so that the signal finds
		// the handler installed), then at a random moment.
		sc := bufio.NewReader(stderr)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = errb.ReadFrom(sc) }()
		// (Its write-ahead log: the database is open and made.)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
			if _, err := os.Stat(dbFile + "-wal"); err == nil {
				break
			}
		}
		time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
		_ = cmd.Process.Signal(sig)
		wg.Wait()
		_ = cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case code == 130 && strings.Contains(errb.String(), "interrupted:"):
			interrupted++
		case code == 0:
		case ws.Signaled() && ws.Signal() == sig:
			t.Logf("round %d: %v arrived before fxsum handled it: the default action", round, sig)
		default:
			t.Fatalf("round %d: %v: exit %d, want 130 or 0; stderr:\n%s", round, sig, code, errb.String())
		}
		integrityCheck(t, dbFile)
		// Rows of files deleted since the last run may still be there
		// (the interrupted run did not reach them); the others are right.
		rows := 0
		for p, d := range indexRows(t, dbFile) {
			if want, ok := tr.files[p]; ok {
				rows++
				if want != d {
					t.Errorf("round %d: after %v, %q has digest %q, want %q", round, sig, p, d, want)
				}
			}
		}
		r := a11ok(t, work, tr.root)
		s := parseSummary(t, r.stderr)
		if s.indexed != len(tr.files) || s.skipped < rows-1 {
			t.Errorf("round %d: resume after %v with %d rows: summary %+v, want all %d indexed and the rows skipped", round, sig, rows, s, len(tr.files))
		}
		checkIndex(t, dbFile, tr)
		// Change the tree for the next round: a rerun with work to do.
		rw := rand.New(rand.NewPCG(uint64(round), 1))
		tr.write(t, filepath.Join(tr.root, fmt.Sprintf("added-%d", round), "x"), rw, 100+round)
		tr.remove(t, filepath.Join(tr.root, fmt.Sprintf("d%d", round%7), fmt.Sprintf("e%d", round)))
		if round == 3 {
			if err := os.Remove(dbFile); err != nil { // and a new index again
				t.Fatal(err)
			}
			_ = os.Remove(dbFile + "-wal")
			_ = os.Remove(dbFile + "-shm")
		}
	}
	if interrupted == 0 {
		t.Logf("no run was interrupted before it finished")
	}
}

// TestAttack11_TwoRunsOneDatabase: two index runs of overlapping trees,
// a manifest and a verify, on one database at once, three times: every
// command exits 0 and the index is the union of both trees.
func TestAttack11_TwoRunsOneDatabase(t *testing.T) {
	a := genTree(t, 800)
	b := genTree(t, 600, 2<<20)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	a11ok(t, work, "--quiet", a.root)
	for round := range 3 {
		var wg sync.WaitGroup
		res := make([]result, 4)
		hung := make([]bool, 4)
		args := [][]string{{"--rehash", a.root}, {"--rehash", b.root, filepath.Join(a.root, "d1")}, {"manifest"}, {"verify"}}
		for i := range args {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], hung[i] = a11(t, work, 5*time.Minute, args[i]...)
			}()
		}
		wg.Wait()
		for i := range args {
			if hung[i] || res[i].code != 0 {
				t.Errorf("round %d: fxsum %q: exit %d (hung %v), want 0; stderr:\n%s", round, args[i], res[i].code, hung[i], res[i].stderr)
			}
		}
	}
	union := &tree{files: map[string]string{}}
	for p, d := range a.files {
		union.files[p] = d
	}
	for p, d := range b.files {
		union.files[p] = d
	}
	checkIndex(t, dbFile, union)
	integrityCheck(t, dbFile)
}

// TestAttack11_BadFlagsAndPaths: bad values are one line naming the
// culprit, exit 2; --workers at its bounds works; a PATH that does not
// exist is exit 1 and the rest is indexed; a database that is a folder,
// /dev/null, in a missing folder, or a dangling link is one line, exit 2;
// and no usage error creates a database.
func TestAttack11_BadFlagsAndPaths(t *testing.T) {
	tree := a11small(t, 20)
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(work, "nowhere", "x.db"), filepath.Join(work, "dangling.db")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--workers", "257", tree}, 2, "257"},
		{[]string{"--workers", "-1", tree}, 2, "-1"},
		{[]string{"--workers", "1e2", tree}, 2, "1e2"},
		{[]string{"--workers", "", tree}, 2, "workers"},
		{[]string{"--algo", "BLAKE3x", tree}, 2, "BLAKE3x"},
		{[]string{"--algo", "", tree}, 2, "--algo"},
		{[]string{"--exclude", "[", tree}, 2, "["},
		{[]string{"--exclude", "", tree}, 2, "--exclude"},
		{[]string{"--db", "", tree}, 2, "--db"},
		{[]string{"--db", work, tree}, 2, work},
		{[]string{"--db", "/dev/null", tree}, 2, "/dev/null"},
		{[]string{"--db", filepath.Join(work, "missing", "x.db"), tree}, 2, filepath.Join(work, "missing")},
		{[]string{"--db", filepath.Join(work, "dangling.db"), tree}, 2, "dangling.db"},
		{[]string{"--root", tree, tree}, 2, "--root"},
		{[]string{"--rehash", "manifest"}, 2, "--rehash"},
		{[]string{"verify", "--algo", "sha512"}, 2, "--algo"},
		{[]string{"--idle-timeout", "1s", tree}, 2, "--idle-timeout"},
		{[]string{"--queue", "", tree}, 2, "--queue"},
	} {
		r, hung := a11(t, work, 2*time.Minute, tt.args...)
		line := strings.TrimSpace(r.stderr)
		if hung || r.code != tt.code || !strings.Contains(strings.ToLower(line), strings.ToLower(tt.want)) || strings.Contains(line, "\n") {
			t.Errorf("fxsum %q: exit %d (hung %v), stderr %q; want %d and one line naming %q", tt.args, r.code, hung, r.stderr, tt.code, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "fxsum.db")); !os.IsNotExist(err) {
		t.Errorf("a usage error created the database: %v", err)
	}
	for _, w := range []string{"1", "256"} {
		r := a11ok(t, work, "--db", filepath.Join(work, "w"+w+".db"), "--workers", w, tree)
		if s := parseSummary(t, r.stderr); s.indexed != 20 {
			t.Errorf("--workers %s: %+v", w, s)
		}
	}
	missing := filepath.Join(work, "no such path")
	r, _ := a11(t, work, 2*time.Minute, "--db", filepath.Join(work, "m.db"), missing, tree)
	if r.code != 1 || !strings.Contains(r.stderr, missing) {
		t.Errorf("a PATH that does not exist: exit %d, stderr %q; want 1 naming it", r.code, r.stderr)
	}
	if n := len(indexRows(t, filepath.Join(work, "m.db"))); n != 20 {
		t.Errorf("a PATH that does not exist: %d rows, want the other PATH's 20", n)
	}
}
