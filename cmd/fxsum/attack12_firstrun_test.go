package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// a12tree is a small tree of n files an hour old and the SHA-256 of each.
func a12tree(t *testing.T, n int) *tree {
	t.Helper()
	root := a11small(t, 0)
	tr := &tree{root: root, files: make(map[string]string)}
	rng := rand.New(rand.NewPCG(12, uint64(n)))
	for i := range n {
		tr.write(t, filepath.Join(root, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%03d", i)), rng, 100+i*37)
	}
	return tr
}

// a12startAndSignal starts cmd, waits until dbFile exists (or the process
// ends), waits delay more and sends sig; it returns once the process ended.
func a12startAndSignal(t *testing.T, cmd *exec.Cmd, dbFile string, delay time.Duration, sig os.Signal) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if _, err := os.Lstat(dbFile); err == nil {
			break
		}
		select {
		case <-done:
			return
		default:
		}
		time.Sleep(10 * time.Microsecond)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("fxsum did not end within 2 minutes of %v", sig)
	}
}

// a12checkManifest: a manifest of a database cut short is either lines of
// files of the tree with their digests, exit 0, or one line, exit 2.
func a12checkManifest(t *testing.T, what string, r result, tr *tree) {
	t.Helper()
	switch r.code {
	case 0:
		for _, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
			if l == "" {
				continue
			}
			dig, p, _ := strings.Cut(l, "  ")
			if tr.files[p] != dig {
				t.Errorf("%s: line %q: the file's digest is %q", what, l, tr.files[p])
			}
		}
	case 2:
		a12oneLine(t, what, r)
	default:
		t.Errorf("%s: exit %d, want 0 (a manifest) or 2 (one line); stdout:\n%s\nstderr:\n%s", what, r.code, r.stdout, r.stderr)
	}
}

// TestAttack12_FirstRunCutShortThenRead: a first run on a new database
// gets SIGINT, SIGTERM or SIGKILL at moments spread over its first
// milliseconds. Then, before any other index run: manifest and verify by a
// user who may not write the folder, and by the owner, give a manifest of
// what was committed or one line with exit 2 (and the read-only ones leave
// the folder as it was); then an index run succeeds and indexes everything.
func TestAttack12_FirstRunCutShortThenRead(t *testing.T) {
	tr := a12tree(t, 30)
	base := t.TempDir()
	rng := rand.New(rand.NewPCG(12, 2))
	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM, os.Kill}
	for attempt := range 36 {
		work := filepath.Join(base, fmt.Sprintf("a%02d", attempt))
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		dbFile := filepath.Join(work, "new.db")
		sig := sigs[attempt%3]
		// Spread over the first 100 ms: the race-enabled binary is slow.
		delay := time.Duration(attempt*attempt*75+rng.IntN(500)) * time.Microsecond
		a12startAndSignal(t, command(t, work, a11env(), "--db", dbFile, "--quiet", tr.root), dbFile, delay, sig)
		what := fmt.Sprintf("attempt %d (%v %v after the database appeared)", attempt, sig, delay)
		if t.Failed() {
			return
		}
		a12readOnlyFolder(t, work, tr.root)
		before := a12snapshot(t, work)
		t.Logf("%s: left %v", what, a12sizes(work))
		a12checkManifest(t, what+": manifest, read-only", a12user(t, work, "--db", dbFile, "manifest"), tr)
		v := a12user(t, work, "--db", dbFile, "verify")
		if v.code != 0 && v.code != 2 {
			t.Errorf("%s: verify, read-only: exit %d, want 0 or 2; stderr:\n%s", what, v.code, v.stderr)
		} else if v.code == 2 {
			a12oneLine(t, what+": verify, read-only", v)
		}
		a12sameFolder(t, what+": read-only manifest and verify", work, before)
		a12checkManifest(t, what+": manifest by the owner", fxsum(t, work, a11env(), "--db", dbFile, "manifest"), tr)
		r, hung := a11(t, work, 5*time.Minute, "--db", dbFile, tr.root)
		if hung || r.code != 0 {
			t.Fatalf("%s: the next index run: exit %d (hung %v), want 0; stderr:\n%s", what, r.code, hung, r.stderr)
		}
		checkIndex(t, dbFile, tr)
		if t.Failed() {
			return
		}
	}
}

// TestAttack12_TwoFirstRunsOneKilled: two first runs start on the same new
// database; one is killed (SIGKILL or SIGINT) a few milliseconds in. The
// other must finish (exit 0) or refuse with one line (exit 2); the next
// run then completes the index.
func TestAttack12_TwoFirstRunsOneKilled(t *testing.T) {
	tr := a12tree(t, 30)
	base := t.TempDir()
	rng := rand.New(rand.NewPCG(12, 3))
	for attempt := range 16 {
		work := filepath.Join(base, fmt.Sprintf("a%02d", attempt))
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		dbFile := filepath.Join(work, "new.db")
		sig := os.Kill
		if attempt%2 == 1 {
			sig = syscall.SIGINT
		}
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		survivor := command(t, work, a11env(), "--db", dbFile, "--quiet", tr.root)
		victim := command(t, work, a11env(), "--db", dbFile, "--quiet", tr.root)
		sdone := make(chan result, 1)
		go func() {
			// runCmd must not call t.Fatal off the test goroutine: run it plainly.
			r, hung := a12run(t, survivor, 5*time.Minute)
			if hung {
				r.code = -99
			}
			sdone <- r
		}()
		a12startAndSignal(t, victim, dbFile, delay, sig)
		r := <-sdone
		what := fmt.Sprintf("attempt %d (the other run got %v %v after the database appeared)", attempt, sig, delay)
		switch r.code {
		case 0:
		case 2:
			a12oneLine(t, what+": the surviving run", r)
		default:
			t.Errorf("%s: the surviving run: exit %d, want 0 or 2; stderr:\n%s", what, r.code, r.stderr)
		}
		n, hung := a11(t, work, 5*time.Minute, "--db", dbFile, tr.root)
		if hung || n.code != 0 {
			t.Fatalf("%s: the next run: exit %d (hung %v), want 0; stderr:\n%s", what, n.code, hung, n.stderr)
		}
		checkIndex(t, dbFile, tr)
		if t.Failed() {
			return
		}
	}
}

// a12sizes is the size of every file in dir, for the log.
func a12sizes(dir string) string {
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "%s=%d ", e.Name(), fi.Size())
		}
	}
	return b.String()
}
