package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers of the attack15 tests: they run a plain build of fxsum (built
// once per test process, beside the package's test build, in a folder
// others may enter: some runs are as the user nobody) as a child process,
// on trees made under t.TempDir(), and judge it from its public
// documentation only.

var (
	a15fOnce sync.Once
	a15fBin  string
	a15fErr  error
)

// a15fBinary builds fxsum once, beside the package's test build, and
// returns its path.
func a15fBinary(t *testing.T) string {
	t.Helper()
	a15fOnce.Do(func() {
		if buildErr != nil {
			a15fErr = buildErr
			return
		}
		dir := filepath.Dir(fxsumBin)
		if err := os.Chmod(dir, 0o755); err != nil {
			a15fErr = err
			return
		}
		a15fBin = filepath.Join(dir, "fxsum-a15")
		out, err := exec.Command("go", "build", "-o", a15fBin, ".").CombinedOutput()
		if err != nil {
			a15fErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if a15fErr != nil {
		t.Fatal(a15fErr)
	}
	return a15fBin
}

// a15fOpts are the options of one run.
type a15fOpts struct {
	dir    string        // working directory
	nobody bool          // run as the user nobody
	stdout *os.File      // stdout instead of a buffer
	limit  time.Duration // hang guard (default 3 minutes)
}

// a15fCmd is an fxsum command, not started.
func a15fCmd(t *testing.T, o a15fOpts, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(a15fBinary(t), args...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if o.nobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	return cmd
}

// a15fRun runs fxsum and waits for it, killing it (and failing the test) if
// it runs longer than the hang guard.
func a15fRun(t *testing.T, o a15fOpts, args ...string) result {
	t.Helper()
	cmd := a15fCmd(t, o, args...)
	var out, errb bytes.Buffer
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start fxsum %q: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := o.limit
	if limit == 0 {
		limit = 3 * time.Minute
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("fxsum %q hung for %v; stderr:\n%s", args, limit, errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run fxsum %q: %v", args, err)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	a15fNoCrash(t, args, r)
	return r
}

// a15f runs fxsum in dir.
func a15f(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return a15fRun(t, a15fOpts{dir: dir}, args...)
}

// a15fOK runs fxsum in dir and fails the test unless it exits 0.
func a15fOK(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := a15f(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("fxsum %q: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// a15fNoCrash fails the test if the output looks like a Go panic, a stack
// trace, or a dump of the internal log (the log is off by default).
func a15fNoCrash(t *testing.T, args []string, r result) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "[Fx]", "\"level\":", "SIGSEGV", ".go:"} {
		if strings.Contains(r.stderr, bad) || strings.Contains(r.stdout, bad) {
			t.Errorf("fxsum %q (exit %d) printed %q, a crash or a log dump:\nstderr:\n%s", args, r.code, bad, a15fCut(r.stderr))
			return
		}
	}
	if r.code < 0 || (r.code > 2 && r.code != 130) {
		t.Errorf("fxsum %q: exit %d, not one of the documented 0, 1, 2, 130\nstderr:\n%s", args, r.code, a15fCut(r.stderr))
	}
}

func a15fCut(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "...[cut]"
	}
	return s
}

// a15fLines is the non-empty lines of s.
func a15fLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// a15fErrLines is the lines of stderr other than the summary lines.
func a15fErrLines(stderr string) []string {
	var out []string
	for _, l := range a15fLines(stderr) {
		if strings.HasPrefix(l, "fxsum: indexed ") || strings.HasPrefix(l, "fxsum: verified ") ||
			strings.Contains(l, "could not be indexed (see above)") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// a15fWrite writes b to path, making its folders, with an mtime an hour
// ago (so that a rerun does not see it as racily clean).
func a15fWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// a15fTool runs a reference tool (sha256sum, b3sum...) in dir with args and
// returns its stdout; the test is skipped if the tool is not installed.
func a15fTool(t *testing.T, dir string, stdin string, tool string, args ...string) (string, string, error) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// a15fCheck runs "tool -c" on manifest from dir; it returns "" when every
// line is OK and there are want of them, else what went wrong.
func a15fCheck(t *testing.T, tool, dir, manifest string, want int) string {
	t.Helper()
	out, errs, err := a15fTool(t, dir, manifest, tool, "-c", "-")
	ok := strings.Count(out, ": OK\n")
	var bad []string
	for _, l := range a15fLines(out) {
		if !strings.HasSuffix(l, ": OK") {
			bad = append(bad, l)
		}
	}
	if errs != "" {
		bad = append(bad, "stderr: "+strings.TrimSpace(errs))
	}
	if ok != want {
		bad = append(bad, "OK lines: "+strconv.Itoa(ok)+", want "+strconv.Itoa(want))
	}
	if err != nil && len(bad) == 0 {
		bad = append(bad, err.Error())
	}
	return strings.Join(bad, "\n")
}

func a15fSha256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// a15fRegular lists the regular files under root (not following links),
// as paths relative to root, sorted by bytes.
func a15fRegular(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// a15fReference is what "tool -- names..." prints in dir, one line a file,
// in the order of names (sha256sum, sha512sum, b3sum).
func a15fReference(t *testing.T, tool, dir string, names []string) string {
	t.Helper()
	var b strings.Builder
	// In chunks, to stay under the argument limit.
	for i := 0; i < len(names); i += 200 {
		j := min(i+200, len(names))
		args := []string{"--"}
		for _, n := range names[i:j] {
			if n == "-" {
				n = "./-" // "-" is stdin to the tools; fxsum writes "./-" too
			}
			args = append(args, n)
		}
		out, errs, err := a15fTool(t, dir, "", tool, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, errs)
		}
		b.WriteString(out)
	}
	return b.String()
}

// a15fSameLines reports the first differences between two sets of lines.
func a15fSameLines(t *testing.T, what, got, want string) {
	t.Helper()
	g, w := a15fLines(got), a15fLines(want)
	gs := map[string]bool{}
	for _, l := range g {
		gs[l] = true
	}
	ws := map[string]bool{}
	for _, l := range w {
		ws[l] = true
	}
	var missing, extra []string
	for _, l := range w {
		if !gs[l] {
			missing = append(missing, l)
		}
	}
	for _, l := range g {
		if !ws[l] {
			extra = append(extra, l)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		if len(missing) > 10 {
			missing = missing[:10]
		}
		if len(extra) > 10 {
			extra = extra[:10]
		}
		t.Errorf("%s: %d lines, want %d\nmissing (first 10): %q\nextra (first 10): %q", what, len(g), len(w), missing, extra)
	}
}

// a15fNeedRoot skips a test that needs root (to run as nobody).
func a15fNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run fxsum as the user nobody")
	}
}

// a15fOpenUp makes every folder from p up to / searchable by everyone, so
// that a run as nobody reaches p.
func a15fOpenUp(t *testing.T, p string) {
	t.Helper()
	for d := p; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
}
