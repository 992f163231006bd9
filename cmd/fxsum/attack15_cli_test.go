package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAttack15FxsumBadUsageIsOneLine: every bad invocation is exit 2, one
// stderr line that starts with "fxsum:", nothing on stdout, and no database
// made in the working directory.
func TestAttack15FxsumBadUsageIsOneLine(t *testing.T) {
	root := a15fSmallTree(t, 3)
	work := t.TempDir()
	cases := [][]string{
		{"--bogus", root},
		{"--workers", "0", root},
		{"--workers", "-1", root},
		{"--workers", "257", root},
		{"--workers", "99999999999999999999", root},
		{"--workers", "two", root},
		{"--workers=", root},
		{"--algo", "md5", root},
		{"--algo", "SHA-256", root},
		{"--exclude", "[", root},
		{"--exclude", "a[", root},
		{"--db", "", root},
		{"--log-level", "loud", root},
		{"--listen", "127.0.0.1:0", root},
		{"--idle-timeout", "1s", root},
		{"--queue", "", root},
		{"--rehash=maybe", root},
		{"--root", root, root},
		{"index"},
		{},
		{"manifest", "extra"},
		{"manifest", "--rehash"},
		{"manifest", "--workers", "2"},
		{"manifest", "--exclude", "x"},
		{"manifest", "--root", filepath.Join(root, "nope")},
		{"manifest", "--root", ""},
		{"verify", "--algo", "sha256"},
		{"verify", "--root", root},
		{"verify", "--workers", "0"},
		{"worker"},
		{"worker", "--queue", "nats://127.0.0.1:1", "--rehash"},
		{"--version"},
	}
	for _, args := range cases {
		r := a15f(t, work, args...)
		lines := a15fLines(r.stderr)
		if r.code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "fxsum: ") || r.stdout != "" {
			t.Errorf("fxsum %q: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, r.code, a15fCut(r.stdout), a15fCut(r.stderr))
		}
	}
	ents, _ := os.ReadDir(work)
	for _, e := range ents {
		t.Errorf("bad usage left %s in the working directory", e.Name())
	}
	// A typo in a command is a PATH that does not exist: exit 1, one line
	// naming it (the documented rule); and nothing is indexed.
	r := a15f(t, work, "manifset")
	if r.code != 1 || !strings.Contains(r.stderr, "manifset") {
		t.Errorf("fxsum manifset: exit %d, stderr %q; want 1 naming manifset", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("fxsum manifset printed on stdout: %q", r.stdout)
	}
}

// TestAttack15FxsumWorkersAtTheBounds: --workers 1 and 256 give the same,
// right manifest; 256 with a low ulimit -n is one line and exit 2 (README:
// "more than the limit allows is an error, exit 2").
func TestAttack15FxsumWorkersAtTheBounds(t *testing.T) {
	root := a15fSmallTree(t, 600)
	work := t.TempDir()
	exp, n := a15fExpect(t, root)
	for _, w := range []string{"1", "256"} {
		db := filepath.Join(work, "w"+w+".db")
		a15fOK(t, work, "--db", db, "--workers", w, root)
		m := a15fOK(t, work, "--db", db, "manifest", "--root", root)
		if m.stdout != exp {
			a15fSameLines(t, "--workers "+w, m.stdout, exp)
		}
		v := a15fOK(t, work, "--db", db, "verify", "--workers", w)
		if !strings.Contains(v.stderr, "verified "+itoa(n)+" files") {
			t.Errorf("verify --workers %s: %q", w, v.stderr)
		}
	}
	bin := a15fBinary(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" --db low.db --workers 256 "$1"`, bin, root)
	cmd.Dir = work
	r := runCmd(t, cmd)
	a15fNoCrash(t, []string{"ulimit -n 64", "--workers 256"}, r)
	if r.code != 2 || len(a15fLines(r.stderr)) != 1 {
		t.Errorf("--workers 256 under ulimit -n 64: exit %d, stderr %q; want exit 2, one line", r.code, r.stderr)
	}
}

// TestAttack15FxsumWriteErrorsAreReported: coreutils report a failed write
// to stdout ("write error: No space left on device") and exit non-zero;
// output that silently goes nowhere is a lost manifest or a lost list of
// corrupt files.
func TestAttack15FxsumWriteErrorsAreReported(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	root := a15fSmallTree(t, 50)
	work := t.TempDir()
	db := filepath.Join(work, "x.db")
	a15fOK(t, work, "--db", db, root)
	// Damage three files so that verify has lines to print.
	for _, p := range a15fRegular(t, root)[:3] {
		a15fWrite(t, filepath.Join(root, p), []byte("changed"))
	}
	for _, args := range [][]string{{"--help"}, {"manifest", "--help"}, {"--db", db, "manifest"}, {"--db", db, "verify"}} {
		r := a15fRun(t, a15fOpts{dir: work, stdout: full}, args...)
		if r.code == 0 {
			t.Errorf("fxsum %q > /dev/full: exit 0; want non-zero", args)
		}
		if !strings.Contains(strings.ToLower(r.stderr), "no space left") && !strings.Contains(strings.ToLower(r.stderr), "write") {
			t.Errorf("fxsum %q > /dev/full: exit %d and stderr %q: nothing says the output was lost", args, r.code, r.stderr)
		}
	}
}

// TestAttack15FxsumInterruptAndResume sends SIGINT, SIGTERM, or two
// SIGINTs to an index run at several moments. An interrupted run exits 130
// with "interrupted: N of M files indexed", and the database then holds
// exactly N correct rows (the README: a queued file "is reported as not run
// and is not counted as indexed"; files in flight "finish and are
// committed"); the next run hashes the rest and only the rest.
func TestAttack15FxsumInterruptAndResume(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	for i := range 24 {
		a15fWrite(t, filepath.Join(root, "big", itoa(i)), a11random(uint64(i), 6<<20))
	}
	for i := range 3000 {
		a15fWrite(t, filepath.Join(root, "small", itoa(i%10), itoa(i)), a11random(uint64(i+1000), i%2000))
	}
	exp, total := a15fExpect(t, root)
	type plan struct {
		sigs  []os.Signal
		delay time.Duration
	}
	plans := []plan{
		{[]os.Signal{os.Interrupt}, 50 * time.Millisecond},
		{[]os.Signal{os.Interrupt}, 400 * time.Millisecond},
		{[]os.Signal{syscall.SIGTERM}, 150 * time.Millisecond},
		{[]os.Signal{os.Interrupt, os.Interrupt}, 200 * time.Millisecond},
	}
	for i, p := range plans {
		work := t.TempDir()
		db := filepath.Join(work, "x.db")
		cmd := a15fCmd(t, a15fOpts{dir: work}, "--db", db, "--workers", "1", root)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		time.Sleep(p.delay)
		for _, s := range p.sigs {
			_ = cmd.Process.Signal(s)
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("plan %d: fxsum did not stop within 2 minutes of %v", i, p.sigs)
		}
		code := cmd.ProcessState.ExitCode()
		twice := len(p.sigs) > 1
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && twice && ws.Signal() == syscall.SIGINT {
			code = 130 // a second Ctrl-C "exits at once": dying of SIGINT is that
		}
		r := result{code: code, stderr: errb.String()}
		a15fNoCrash(t, []string{"interrupted run"}, r)
		if code == 0 {
			t.Logf("plan %d: the run finished before the signal", i)
		} else if code != 130 {
			t.Errorf("plan %d (%v): exit %d, want 130\n%s", i, p.sigs, code, a15fCut(r.stderr))
		}
		var n, m int
		if code == 130 {
			if k, _ := a15fInterrupted(r.stderr, &n, &m); k != 2 {
				if !twice {
					t.Errorf("plan %d: no \"interrupted: N of M files indexed\" line:\n%s", i, r.stderr)
				}
			} else if n > m || m > total {
				t.Errorf("plan %d: interrupted: %d of %d, but the tree has %d files", i, n, m, total)
			}
		}
		// The database is usable and what it holds is right.
		man := a15fOK(t, work, "--db", db, "manifest", "--root", root)
		rows := len(a15fLines(man.stdout))
		if code == 130 && !twice && rows != n {
			t.Errorf("plan %d: interrupted: %d files indexed, but the manifest has %d rows", i, n, rows)
		}
		if rows > 0 {
			if bad := a15fCheck(t, "sha256sum", root, man.stdout, rows); bad != "" {
				t.Errorf("plan %d: sha256sum -c of the interrupted index: %s", i, bad)
			}
		}
		// Resume.
		res := a15fOK(t, work, "--db", db, root)
		s := parseSummary(t, res.stderr)
		if s.hashed != total-rows || s.skipped != rows {
			t.Errorf("plan %d: resume hashed %d and skipped %d, want %d and %d (the %d rows were already there)", i, s.hashed, s.skipped, total-rows, rows, rows)
		}
		man = a15fOK(t, work, "--db", db, "manifest", "--root", root)
		if man.stdout != exp {
			a15fSameLines(t, "manifest after resume", man.stdout, exp)
		}
	}
}

// a15fInterrupted reads "interrupted: N of M files indexed" from stderr.
func a15fInterrupted(stderr string, n, m *int) (int, error) {
	i := strings.Index(stderr, "interrupted: ")
	if i < 0 {
		return 0, nil
	}
	return fmt.Sscanf(stderr[i:], "interrupted: %d of %d files indexed", n, m)
}
