package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the attack11 tests. They run the binary that TestMain builds,
// as the other end-to-end tests do.

// a11env: a binary built with -race sleeps for a second as it exits unless
// told not to, and these tests run it many times.
func a11env() []string {
	return []string{strings.TrimSpace("GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE"))}
}

// a11 runs fxsum in dir and waits for it; a run that does not end within
// limit is killed and reported as hung (limit only turns a hang into a
// failure: it is minutes, not a performance bound).
func a11(t *testing.T, dir string, limit time.Duration, args ...string) (r result, hung bool) {
	t.Helper()
	cmd := command(t, dir, a11env(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start fxsum %q: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		hung = true
		_ = cmd.Process.Kill()
		err = <-done
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run fxsum %q: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}, hung
}

// a11ok runs fxsum and fails the test unless it exits 0.
func a11ok(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r, hung := a11(t, dir, 5*time.Minute, args...)
	if hung {
		t.Fatalf("fxsum %q hung; stderr:\n%s", args, r.stderr)
	}
	return mustOK(t, r)
}

// a11write writes b to path (making its folder) with mtime mt.
func a11write(t *testing.T, path string, b []byte, mt time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// a11random is n pseudo-random bytes of seed.
func a11random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 11))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// a11check runs tool -c (sha256sum, sha512sum, b3sum) on manifest from
// dir and returns its complaints, "" if every line is OK.
func a11check(t *testing.T, tool, dir, manifest string, wantOK int) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
	cmd := exec.Command(tool, "-c", "-")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasSuffix(l, ": OK") {
			bad = append(bad, l)
		}
	}
	if n := strings.Count(string(out), ": OK\n"); n != wantOK {
		bad = append(bad, "OK lines: "+strconv.Itoa(n)+", want "+strconv.Itoa(wantOK))
	}
	if err != nil && len(bad) == 0 {
		bad = append(bad, err.Error())
	}
	return strings.Join(bad, "\n")
}

// a11shm is a new folder on /dev/shm (tmpfs), removed at the end of the
// test; the test is skipped where there is none.
func a11shm(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	d, err := os.MkdirTemp("/dev/shm", "fxsum-attack11-")
	if err != nil {
		t.Skipf("/dev/shm: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// a11reach makes the folders from p up to the temporary folder's root
// searchable by everyone, so that a run as nobody reaches them.
func a11reach(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		for d := p; d != filepath.Dir(d) && d != os.TempDir() && d != "/dev/shm"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// a11churn calls change(0), change(1), ... on a goroutine of its own, to
// change files while fxsum runs, until the returned stop is called; stop
// waits for the goroutine to end.
func a11churn(change func(i int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			change(i)
		}
	})
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
}
