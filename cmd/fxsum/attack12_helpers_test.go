package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Helpers of the attack12 tests. They run the binary that TestMain builds,
// as the other end-to-end tests do, with the attack11 helpers.

// a12cmd is fxsum with args in dir, as nobody when the tests run as root
// (so that file modes apply), else as the current user.
func a12cmd(t *testing.T, dir string, nobody bool, args ...string) *exec.Cmd {
	t.Helper()
	cmd := command(t, dir, a11env(), args...)
	if nobody && os.Geteuid() == 0 {
		asNobody(cmd)
	}
	return cmd
}

// a12run runs cmd; one that does not end within limit is killed and
// reported as hung (limit only turns a hang into a failure).
func a12run(t *testing.T, cmd *exec.Cmd, limit time.Duration) (r result, hung bool) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		hung = true
		_ = cmd.Process.Kill()
		<-done
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}, hung
}

// a12user runs fxsum as the unprivileged user (nobody when root).
func a12user(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r, hung := a12run(t, a12cmd(t, dir, true, args...), 2*time.Minute)
	if hung {
		t.Fatalf("fxsum %q hung; stderr:\n%s", args, r.stderr)
	}
	return r
}

// a12readOnlyFolder makes work a folder that the unprivileged user may read
// and search but not write, reachable by that user, and restores it.
func a12readOnlyFolder(t *testing.T, work string, alsoReach ...string) {
	t.Helper()
	if os.Geteuid() == 0 {
		a11reach(t, append([]string{filepath.Dir(fxsumBin), work}, alsoReach...)...)
		if err := os.Chmod(work, 0o755); err != nil { // root's: nobody may not write it
			t.Fatal(err)
		}
	} else if err := os.Chmod(work, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(work, 0o755) })
}

// a12snapshot is the name and content of every entry of dir.
func a12snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:])
		} else if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		m[e.Name()] = desc
	}
	return m
}

// a12sameFolder reports how dir differs from the snapshot before.
func a12sameFolder(t *testing.T, what, dir string, before map[string]string) {
	t.Helper()
	after := a12snapshot(t, dir)
	var diffs []string
	for n, d := range after {
		if b, ok := before[n]; !ok {
			diffs = append(diffs, "added "+n)
		} else if b != d {
			diffs = append(diffs, "changed "+n)
		}
	}
	for n := range before {
		if _, ok := after[n]; !ok {
			diffs = append(diffs, "removed "+n)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: the database's folder changed: %s", what, strings.Join(diffs, ", "))
	}
}

// a12oneLine checks that r is exit 2 with one line on stderr.
func a12oneLine(t *testing.T, what string, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 2 || len(lines) != 1 || lines[0] == "" {
		t.Errorf("%s: exit %d with %d lines on stderr, want exit 2 and one line:\n%s", what, r.code, len(lines), r.stderr)
	}
}
