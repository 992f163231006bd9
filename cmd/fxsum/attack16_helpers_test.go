package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Round 16 of adversarial tests: the binary is built once and run as a user
// would run it; only the README and --help were read.

var (
	a16fBinOnce sync.Once
	a16fBinPath string
	a16fBinErr  error
)

const a16fScratch = "/tmp/a16f"

// a16fBin builds fxsum once into a scratch folder readable by everyone (some
// tests run it as nobody).
func a16fBin(t *testing.T) string {
	t.Helper()
	a16fBinOnce.Do(func() {
		if err := os.MkdirAll(a16fScratch, 0o755); err != nil {
			a16fBinErr = err
			return
		}
		_ = os.Chmod(a16fScratch, 0o755)
		dir, err := os.MkdirTemp(a16fScratch, "bin-")
		if err != nil {
			a16fBinErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		p := filepath.Join(dir, "fxsum")
		out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput()
		if err != nil {
			a16fBinErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		a16fBinPath = p
	})
	if a16fBinErr != nil {
		t.Fatal(a16fBinErr)
	}
	return a16fBinPath
}

// a16fDir is a fresh scratch folder under /tmp/a16f, world-readable.
func a16fDir(t *testing.T) string {
	t.Helper()
	a16fBin(t)
	d, err := os.MkdirTemp(a16fScratch, "t-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// give back every permission first, then remove
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if e != nil && e.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		_ = os.RemoveAll(d)
	})
	return d
}

type a16fResult struct {
	Out, Err string
	Code     int
}

func (r a16fResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, a16fClip(r.Out), a16fClip(r.Err))
}

func a16fClip(s string) string {
	if len(s) > 4000 {
		return s[:4000] + "...(clipped)"
	}
	return s
}

type a16fOpts struct {
	Dir     string
	Nobody  bool
	Timeout time.Duration
	Env     []string
	Stdout  string // a file to send stdout to, instead of capturing it
}

// a16fRunOpt runs the binary with a hang guard and returns what it printed.
func a16fRunOpt(t *testing.T, o a16fOpts, args ...string) a16fResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a16fBin(t), args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	if o.Stdout != "" {
		f, err := os.OpenFile(o.Stdout, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout = f
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	if o.Nobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("fxsum %q did not finish within %v (hang)\nstdout:\n%s\nstderr:\n%s", args, o.Timeout, a16fClip(out.String()), a16fClip(errb.String()))
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("fxsum %q: %v", args, err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	return a16fResult{Out: out.String(), Err: errb.String(), Code: code}
}

func a16fRun(t *testing.T, dir string, args ...string) a16fResult {
	t.Helper()
	return a16fRunOpt(t, a16fOpts{Dir: dir}, args...)
}

// a16fSyncBuf is a bytes.Buffer safe for a child's output and a poller.
type a16fSyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *a16fSyncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *a16fSyncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type a16fProc struct {
	Cmd      *exec.Cmd
	Out, Err *a16fSyncBuf
	done     chan struct{}
	werr     error
}

// a16fStart starts the binary in the background; Wait gives its result.
func a16fStart(t *testing.T, dir string, args ...string) *a16fProc {
	t.Helper()
	cmd := exec.Command(a16fBin(t), args...)
	cmd.Dir = dir
	p := &a16fProc{Cmd: cmd, Out: &a16fSyncBuf{}, Err: &a16fSyncBuf{}, done: make(chan struct{})}
	cmd.Stdout = p.Out
	cmd.Stderr = p.Err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.werr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *a16fProc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits at most d; ok is false if the process is still running.
func (p *a16fProc) Wait(d time.Duration) (a16fResult, bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		return a16fResult{Out: p.Out.String(), Err: p.Err.String(), Code: -1}, false
	}
	code := 0
	if p.werr != nil {
		var ee *exec.ExitError
		if errors.As(p.werr, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else {
			code = -2
		}
	}
	return a16fResult{Out: p.Out.String(), Err: p.Err.String(), Code: code}, true
}

func (p *a16fProc) Signal(s os.Signal) { _ = p.Cmd.Process.Signal(s) }

// a16fWrite writes a file, creating its folders.
func a16fWrite(t *testing.T, p string, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// a16fOld sets a file's times well in the past, so that it is not "racily
// clean" and reruns treat it by size and time alone.
func a16fOld(t *testing.T, p string, offset time.Duration) {
	t.Helper()
	tm := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(offset)
	if err := os.Chtimes(p, tm, tm); err != nil {
		t.Fatal(err)
	}
}

// a16fTree makes dirs x files small files under root.
func a16fTree(t *testing.T, root string, dirs, files int) {
	t.Helper()
	for d := 0; d < dirs; d++ {
		dd := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dd, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < files; f++ {
			data := strings.Repeat(fmt.Sprintf("%d-%d;", d, f), f%9+1)
			if err := os.WriteFile(filepath.Join(dd, fmt.Sprintf("f%04d", f)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func a16fHasher(algo string) hash.Hash {
	switch algo {
	case "sha512":
		return sha512.New()
	default:
		return sha256.New()
	}
}

// a16fExpected hashes every regular file under the roots (not following
// links), keyed by absolute path.
func a16fExpected(t *testing.T, algo string, roots ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := a16fHasher(algo)
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			m[p] = hex.EncodeToString(h.Sum(nil))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// a16fParse reads manifest lines into path -> digest, undoing GNU escaping.
func a16fParse(t *testing.T, manifest string) (map[string]string, []string) {
	t.Helper()
	m := map[string]string{}
	var order []string
	if manifest == "" {
		return m, nil
	}
	if !strings.HasSuffix(manifest, "\n") {
		t.Fatalf("manifest does not end with a newline: %q", a16fClip(manifest))
	}
	for _, line := range strings.Split(strings.TrimSuffix(manifest, "\n"), "\n") {
		dig, p := parseManifestLine(t, line)
		if _, dup := m[p]; dup {
			t.Fatalf("path %q twice in the manifest", p)
		}
		m[p] = dig
		order = append(order, p)
	}
	return m, order
}

func a16fManifest(t *testing.T, dir, db string, extra ...string) map[string]string {
	t.Helper()
	args := append([]string{"manifest", "--db", db}, extra...)
	r := a16fRun(t, dir, args...)
	if r.Code != 0 {
		t.Fatalf("manifest: %v", r)
	}
	m, order := a16fParse(t, r.Out)
	if !sort.StringsAreSorted(order) {
		t.Errorf("manifest not sorted by path bytes: %q", order)
	}
	return m
}

// a16fSameMap reports the differences between two path -> digest maps.
func a16fSameMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q", p))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%q: got %s want %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %q", p))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		t.Errorf("%s: %d differences (got %d rows, want %d):\n%s", what, len(diffs), len(got), len(want), strings.Join(diffs, "\n"))
	}
}

// a16fLines splits stderr into its non-empty lines.
func a16fLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

func a16fNeed(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
}

func a16fNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run fxsum as nobody")
	}
}

func a16fFileBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func a16fListDir(t *testing.T, d string) []string {
	t.Helper()
	es, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
