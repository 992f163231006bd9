package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var a16fInterruptedRe = regexp.MustCompile(`interrupted: (\d+) of (\d+) files indexed`)

// a16fWaitFor polls until the file exists (or the process ends).
func a16fWaitFor(p *a16fProc, file string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !p.Exited() {
		if _, err := os.Stat(file); err == nil {
			return
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// SIGINT on a new index: exit 130 with "interrupted: N of M files
// indexed", N of them in the index, as the README says ("the files in flight
// finish and are committed, no queued file ... is counted as indexed"); the
// next run completes the index.
func TestA16fInterruptCountsWhatIsCommitted(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 20, 500)
	want := a16fExpected(t, "sha256", root)
	interrupted := 0
	for i, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM, os.Interrupt, syscall.SIGTERM, os.Interrupt} {
		db := filepath.Join(base, fmt.Sprintf("x%d.db", i))
		p := a16fStart(t, base, "--db", db, root)
		a16fWaitFor(p, db+"-wal")
		time.Sleep(time.Duration(i) * 7 * time.Millisecond)
		p.Signal(sig)
		r, ok := p.Wait(120 * time.Second)
		if !ok {
			t.Fatalf("run %d does not stop on %v", i, sig)
		}
		switch r.Code {
		case 0: // finished before the signal
		case 130:
			interrupted++
			m := a16fInterruptedRe.FindStringSubmatch(r.Err)
			if m == nil {
				t.Errorf("run %d: exit 130 without the interrupted line: %v", i, r)
				break
			}
			n, _ := strconv.Atoi(m[1])
			total, _ := strconv.Atoi(m[2])
			if n > total {
				t.Errorf("run %d: %s: more indexed than found", i, m[0])
			}
			if got := len(a16fManifest(t, base, db)); got != n {
				t.Errorf("run %d (%v): %q but the index holds %d rows", i, sig, m[0], got)
			}
		default:
			t.Errorf("run %d: %v: want 130 (or 0), got %v", i, sig, r)
		}
		rr := a16fRun(t, base, "--db", db, root)
		if rr.Code != 0 {
			t.Errorf("run %d: the resuming run: %v", i, rr)
		}
		a16fSameMap(t, fmt.Sprintf("run %d resumed", i), a16fManifest(t, base, db), want)
	}
	t.Logf("%d of 5 runs were interrupted", interrupted)
}

// kill -9 and a second Ctrl-C, at many moments, including while the
// database is being made: the next run always completes a correct index,
// and verify finds nothing.
func TestA16fKillAtManyMomentsThenResume(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 12, 400)
	big := make([]byte, 40<<20)
	for i := range big {
		big[i] = byte(i * 31)
	}
	if err := os.WriteFile(filepath.Join(root, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	want := a16fExpected(t, "sha256", root)
	type how struct {
		name  string
		delay time.Duration
		kill  func(p *a16fProc)
	}
	var hows []how
	for _, d := range []time.Duration{0, 2 * time.Millisecond, 8 * time.Millisecond, 20 * time.Millisecond, 45 * time.Millisecond, 90 * time.Millisecond} {
		hows = append(hows,
			how{"kill-9", d, func(p *a16fProc) { p.Signal(syscall.SIGKILL) }},
			how{"double-SIGINT", d, func(p *a16fProc) {
				p.Signal(os.Interrupt)
				time.Sleep(time.Millisecond)
				p.Signal(os.Interrupt)
			}},
		)
	}
	for i, h := range hows {
		db := filepath.Join(base, fmt.Sprintf("k%d.db", i))
		p := a16fStart(t, base, "--db", db, root)
		time.Sleep(h.delay)
		h.kill(p)
		r, ok := p.Wait(60 * time.Second)
		if !ok {
			t.Fatalf("%s after %v: the run does not stop", h.name, h.delay)
		}
		if h.name == "double-SIGINT" && r.Code != 130 && r.Code != 0 {
			t.Errorf("%s after %v: want exit 130, got %v", h.name, h.delay, r)
		}
		rr := a16fRun(t, base, "--db", db, root)
		if rr.Code != 0 {
			t.Errorf("%s after %v: the next run: %v", h.name, h.delay, rr)
			continue
		}
		a16fSameMap(t, fmt.Sprintf("%s after %v", h.name, h.delay), a16fManifest(t, base, db), want)
		if v := a16fRun(t, base, "verify", "--db", db); v.Code != 0 {
			t.Errorf("%s after %v: verify: %v", h.name, h.delay, v)
		}
		// a second kill during a rerun of the now complete index
		p = a16fStart(t, base, "--db", db, "--rehash", root)
		time.Sleep(h.delay)
		p.Signal(syscall.SIGKILL)
		p.Wait(60 * time.Second)
		if m := a16fRun(t, base, "manifest", "--db", db); m.Code != 0 {
			t.Errorf("%s after %v: manifest after a killed rehash: %v", h.name, h.delay, m)
		} else {
			got, _ := a16fParse(t, m.Out)
			a16fSameMap(t, "after a killed --rehash", got, want)
		}
	}
}
