package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The end-to-end tests build fxsum once and run it as a user would, on trees
// generated in t.TempDir().
var (
	fxsumBin string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fxsum-test-")
	if err != nil {
		buildErr = err
	} else {
		fxsumBin = filepath.Join(dir, "fxsum")
		args := []string{"build", "-tags", "fxsumtest", "-o", fxsumBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		os.Exit(code)
	}))
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// fxsum runs the binary with args in dir and waits for it.
func fxsum(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, command(t, dir, env, args...))
}

// runCmd runs cmd (the binary, as command makes it, or a shell that runs
// it) and waits for it. A command that exits with an error is a result; one
// that cannot run fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %q: %v", cmd.Args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

func command(t *testing.T, dir string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	cmd := exec.Command(fxsumBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// summary is the counts of an index run's summary line.
type summary struct{ indexed, hashed, skipped, removed, errors int }

var summaryRE = regexp.MustCompile(`fxsum: indexed (\d+) files: hashed (\d+) \([^)]*\), skipped (\d+) unchanged, removed (\d+), (\d+) errors`)

func parseSummary(t *testing.T, stderr string) summary {
	t.Helper()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line in stderr:\n%s", stderr)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	return summary{indexed: n(1), hashed: n(2), skipped: n(3), removed: n(4), errors: n(5)}
}

// tree is a generated directory tree: the absolute path of every file and
// its content's SHA-256, computed here, independently of fxsum.
type tree struct {
	root  string
	files map[string]string
}

// specialNames are file names that need care: spaces, unicode, a
// backslash, a newline, a carriage return, a leading dash.
var specialNames = []string{
	"with space.txt", "  leading and trailing  ", "ünïcødé-日本語.bin", `back\slash`, "new\nline",
	"carriage\rreturn", `both\and` + "\n", "-dash", "#hash?query%25",
}

// genTree writes n small files of mixed sizes in nested directories, the
// special names, an empty and a one-byte file, and the big files given, all
// with deterministic pseudo-random content.
func genTree(t *testing.T, n int, big ...int) *tree {
	t.Helper()
	root := t.TempDir()
	tr := &tree{root: root, files: make(map[string]string)}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%d", i%7), fmt.Sprintf("e%d", i%13))
		if i%5 == 0 {
			dir = filepath.Join(dir, "deeper dir", fmt.Sprintf("f%d", i%3))
		}
		tr.write(t, filepath.Join(dir, fmt.Sprintf("file-%04d", i)), rng, rng.IntN(8<<10))
	}
	for i, name := range specialNames {
		tr.write(t, filepath.Join(root, "special", name), rng, 10+i)
	}
	tr.write(t, filepath.Join(root, "empty"), rng, 0)
	tr.write(t, filepath.Join(root, "one"), rng, 1)
	tr.write(t, filepath.Join(root, "-"), rng, 2) // stdin to checkers
	for i, size := range big {
		tr.write(t, filepath.Join(root, "big", fmt.Sprintf("big-%d", i)), rng, size)
	}
	return tr
}

func (tr *tree) write(t *testing.T, path string, rng *rand.Rand, size int) {
	t.Helper()
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// An hour old: a file modified within racyWindow of being indexed is
	// hashed again by the next run, and the tests count what a rerun skips.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	tr.files[path] = hex.EncodeToString(sum[:])
}

func (tr *tree) remove(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	for p := range tr.files {
		if under(p, path) {
			delete(tr.files, p)
		}
	}
}

// indexRows reads the database with a connection of its own.
func indexRows(t *testing.T, dbFile string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT ` + pathExpr + `, digest FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]string)
	for rows.Next() {
		var (
			p string
			d []byte
		)
		if err := rows.Scan(&p, &d); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[p]; dup {
			t.Errorf("path %q indexed twice", p)
		}
		got[p] = hex.EncodeToString(d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkIndex asserts that the index holds exactly the tree's files with
// their digests.
func checkIndex(t *testing.T, dbFile string, tr *tree) {
	t.Helper()
	got := indexRows(t, dbFile)
	for p, want := range tr.files {
		if got[p] != want {
			t.Errorf("%q: digest %q, want %q", p, got[p], want)
		}
	}
	for p := range got {
		if _, ok := tr.files[p]; !ok {
			t.Errorf("%q indexed, but it is not in the tree", p)
		}
	}
	if len(got) != len(tr.files) {
		t.Errorf("index has %d rows, tree %d files", len(got), len(tr.files))
	}
}

func integrityCheck(t *testing.T, dbFile string) {
	t.Helper()
	db, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check: %s", res)
	}
}

func sha256sumCheck(t *testing.T, dir, manifest string, wantLines int) {
	t.Helper()
	cmd := exec.Command("sha256sum", "-c", "--strict", "-")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": OK\n"); n != wantLines {
		t.Fatalf("sha256sum -c: %d OK lines, want %d\n%s", n, wantLines, out)
	}
}

func TestIndexThenManifestPassesSha256sum(t *testing.T) {
	tr := genTree(t, 3000, 1<<20, 1<<20, 24<<20)
	work := t.TempDir()
	r := mustOK(t, fxsum(t, work, nil, tr.root))
	s := parseSummary(t, r.stderr)
	if s.hashed != len(tr.files) || s.indexed != len(tr.files) || s.skipped != 0 || s.errors != 0 {
		t.Errorf("summary %+v, want %d hashed and indexed", s, len(tr.files))
	}
	dbFile := filepath.Join(work, "fxsum.db")
	checkIndex(t, dbFile, tr)
	integrityCheck(t, dbFile)

	m := mustOK(t, fxsum(t, work, nil, "manifest"))
	lines := strings.Split(strings.TrimSuffix(m.stdout, "\n"), "\n")
	if got := len(lines); got != len(tr.files) {
		t.Errorf("manifest has %d entries, want %d", got, len(tr.files))
	}
	if !strings.Contains(m.stdout, "\\"+tr.files[filepath.Join(tr.root, "special", "new\nline")]+"  ") {
		t.Errorf("the name with a newline is not escaped:\n%s", m.stdout)
	}
	sha256sumCheck(t, "/", m.stdout, len(tr.files))

	// --root: paths relative to the tree, checked from inside it.
	rel := mustOK(t, fxsum(t, work, nil, "manifest", "--root", tr.root))
	if strings.Contains(rel.stdout, tr.root) {
		t.Errorf("manifest --root still has absolute paths")
	}
	sha256sumCheck(t, tr.root, rel.stdout, len(tr.files))
}

// b3sum is the BLAKE3-256 digest of b computed by b3sum, the reference
// implementation; the test is skipped where it is not installed.
func b3sum(t *testing.T, b []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("b3sum"); err != nil {
		t.Skip("b3sum is not installed (apt-get install b3sum)")
	}
	cmd := exec.Command("b3sum", "--no-names")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("b3sum: %v", err)
	}
	d, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("b3sum: %q: %v", out, err)
	}
	return d
}

func TestOtherAlgorithms(t *testing.T) {
	tests := []struct {
		algo string
		sum  func(*testing.T, []byte) []byte
	}{
		{"sha512", func(_ *testing.T, b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
		{"blake3", b3sum},
	}
	for _, tt := range tests {
		t.Run(tt.algo, func(t *testing.T) {
			tr := genTree(t, 50, 1<<20)
			work := t.TempDir()
			mustOK(t, fxsum(t, work, nil, "--algo", tt.algo, tr.root))
			got := indexRows(t, filepath.Join(work, "fxsum.db"))
			for p := range tr.files {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if want := hex.EncodeToString(tt.sum(t, b)); got[p] != want {
					t.Errorf("%q: %s digest %q, want %q", p, tt.algo, got[p], want)
				}
			}
			// Changing the algorithm re-hashes everything.
			r := mustOK(t, fxsum(t, work, nil, tr.root))
			if s := parseSummary(t, r.stderr); s.hashed != len(tr.files) {
				t.Errorf("after switching to sha256: hashed %d, want %d", s.hashed, len(tr.files))
			}
			checkIndex(t, filepath.Join(work, "fxsum.db"), tr)
		})
	}
}

func TestIncrementalRun(t *testing.T) {
	tr := genTree(t, 600)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	mustOK(t, fxsum(t, work, nil, tr.root))

	rng := rand.New(rand.NewPCG(7, 7))
	touched := filepath.Join(tr.root, "one")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(touched, later, later); err != nil {
		t.Fatal(err)
	}
	tr.write(t, filepath.Join(tr.root, "special", "with space.txt"), rng, 99) // modified
	tr.write(t, filepath.Join(tr.root, "new dir", "added"), rng, 1234)        // added
	tr.remove(t, filepath.Join(tr.root, "empty"))                             // deleted
	gone := filepath.Join(tr.root, "d3")
	before := len(tr.files)
	tr.remove(t, gone) // a whole subtree deleted
	removed := before - len(tr.files) + 1

	r := mustOK(t, fxsum(t, work, nil, tr.root))
	s := parseSummary(t, r.stderr)
	want := summary{indexed: len(tr.files), hashed: 3, skipped: len(tr.files) - 3, removed: removed}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	checkIndex(t, dbFile, tr)

	r = mustOK(t, fxsum(t, work, nil, "--rehash", tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != len(tr.files) || s.skipped != 0 {
		t.Errorf("--rehash: summary %+v, want all %d hashed", s, len(tr.files))
	}
	checkIndex(t, dbFile, tr)
}

// A file rewritten, same size, within the second it was indexed keeps its
// size and time on file systems that keep times to the second (ext3, FAT,
// many NFS and SMB servers): the next run must not find it unchanged. A
// file whose time is within racyWindow of its read, or in the future, is
// indexed racily clean; rewriting it and setting its time back to what was
// indexed is that case on any file system. (A time a minute ahead rather
// than now: the test does not depend on how soon the run reads the file.)
func TestRacilyCleanFileIsHashedAgain(t *testing.T) {
	tr := genTree(t, 10)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	path := filepath.Join(tr.root, "racy")
	rng := rand.New(rand.NewPCG(3, 3))
	tr.write(t, path, rng, 100)
	soon := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, soon, soon); err != nil {
		t.Fatal(err)
	}
	mustOK(t, fxsum(t, work, nil, tr.root))
	tr.write(t, path, rng, 100) // new content, same size
	if err := os.Chtimes(path, soon, soon); err != nil {
		t.Fatal(err)
	}
	r := mustOK(t, fxsum(t, work, nil, tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != 1 || s.skipped != len(tr.files)-1 {
		t.Errorf("rerun: summary %+v, want the racily clean file hashed again and %d skipped", s, len(tr.files)-1)
	}
	checkIndex(t, dbFile, tr)
	// Its time set an hour back, it is hashed once more, and clean.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	mustOK(t, fxsum(t, work, nil, tr.root))
	r = mustOK(t, fxsum(t, work, nil, tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.skipped != len(tr.files) {
		t.Errorf("last rerun: summary %+v, want nothing hashed", s)
	}
}

// startHeld starts an index run that holds after hold tasks and waits until
// it says so. wait waits for the process and returns its stderr.
func startHeld(t *testing.T, work, root string, hold int) (cmd *exec.Cmd, wait func() string) {
	t.Helper()
	cmd = command(t, work, []string{envHoldAfter + "=" + strconv.Itoa(hold), envBatchRows + "=7"}, root)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if sc.Text() == holdMessage {
			break
		}
	}
	if !strings.Contains(seen.String(), holdMessage) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("fxsum never held; stderr:\n%s", seen.String())
	}
	done := make(chan struct{})
	go func() { // ends when the process exits and the pipe closes
		defer close(done)
		_, _ = io.Copy(&seen, stderr)
	}()
	return cmd, func() string {
		<-done
		_ = cmd.Wait()
		return seen.String()
	}
}

func TestInterruptThenResume(t *testing.T) {
	tr := genTree(t, 1500, 1<<20)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	const hold = 100
	cmd, wait := startHeld(t, work, tr.root, hold)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stderr := wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d, want 130; stderr:\n%s", code, stderr)
	}
	m := regexp.MustCompile(`interrupted: (\d+) of (\d+) files indexed`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no interrupt message; stderr:\n%s", stderr)
	}
	// The tasks held at the interrupt were in flight: they finish and are
	// committed; no queued task starts.
	h := regexp.MustCompile(regexp.QuoteMeta(heldMessage) + ` (\d+)`).FindStringSubmatch(stderr)
	if h == nil {
		t.Fatalf("no %q line; stderr:\n%s", heldMessage, stderr)
	}
	held, _ := strconv.Atoi(h[1])
	// One per worker in flight at the interrupt, and at most one more each
	// taken in the instant between the stop's refusal and its drop.
	if w := runtime.GOMAXPROCS(0); held < 1 || held > 2*w {
		t.Errorf("%d tasks held, want 1 to %d", held, 2*w)
	}
	want := hold + held
	if n, _ := strconv.Atoi(m[1]); n != want {
		t.Errorf("interrupted after %s files, want %d: every task that started, and no other, must be committed", m[1], want)
	}
	if total, _ := strconv.Atoi(m[2]); total < want || total > len(tr.files) {
		t.Errorf("interrupted: total %d, want between %d and %d", total, want, len(tr.files))
	}
	if got := len(indexRows(t, dbFile)); got != want {
		t.Errorf("%d rows after the interrupt, want %d", got, want)
	}
	integrityCheck(t, dbFile)

	r := mustOK(t, fxsum(t, work, nil, tr.root))
	s := parseSummary(t, r.stderr)
	if s.skipped != want || s.hashed != len(tr.files)-want {
		t.Errorf("resume: summary %+v, want %d skipped and %d hashed", s, want, len(tr.files)-want)
	}
	checkIndex(t, dbFile, tr)
}

func TestKill9ThenResume(t *testing.T) {
	tr := genTree(t, 1500, 1<<20)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	const hold = 300
	cmd, wait := startHeld(t, work, tr.root, hold)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wait()
	integrityCheck(t, dbFile)
	rows := indexRows(t, dbFile)
	// Every worker commits every 7 rows: all but the last few rows of each
	// worker are in.
	if low := hold - 8*runtime.GOMAXPROCS(0); len(rows) > hold || len(rows) < low {
		t.Errorf("%d rows after kill -9, want between %d and %d", len(rows), low, hold)
	}
	for p, d := range rows {
		if tr.files[p] != d {
			t.Errorf("after kill -9: %q has digest %q, want %q", p, d, tr.files[p])
		}
	}

	r := mustOK(t, fxsum(t, work, nil, tr.root))
	s := parseSummary(t, r.stderr)
	if s.skipped != len(rows) || s.hashed != len(tr.files)-len(rows) {
		t.Errorf("resume: summary %+v, want %d skipped, %d hashed", s, len(rows), len(tr.files)-len(rows))
	}
	checkIndex(t, dbFile, tr)
	integrityCheck(t, dbFile)
}

func TestRefusesForeignDatabase(t *testing.T) {
	tr := genTree(t, 5)
	work := t.TempDir()
	text := filepath.Join(work, "notes.txt")
	if err := os.WriteFile(text, []byte("not a database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(work, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE files (x); INSERT INTO files VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	tests := []struct {
		name    string
		giveDB  string
		giveCmd []string
		wantMsg string
	}{
		{"TextFileIndex", text, []string{tr.root}, "not an fxsum database"},
		{"TextFileManifest", text, []string{"manifest"}, "not an fxsum database"},
		{"TextFileVerify", text, []string{"verify"}, "not an fxsum database"},
		{"ForeignSQLiteIndex", other, []string{tr.root}, "not an fxsum database"},
		{"ForeignSQLiteVerify", other, []string{"verify"}, "not an fxsum database"},
		{"MissingManifest", filepath.Join(work, "none.db"), []string{"manifest"}, "no such database"},
		{"Directory", work, []string{tr.root}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := readAll(t, tt.giveDB)
			r := fxsum(t, work, nil, append(tt.giveCmd, "--db", tt.giveDB)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.wantMsg) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.wantMsg)
			}
			if after := readAll(t, tt.giveDB); !bytes.Equal(before, after) {
				t.Errorf("%s was modified", tt.giveDB)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(work, "none.db")); !os.IsNotExist(err) {
		t.Errorf("manifest created a database: %v", err)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUsageErrors(t *testing.T) {
	work := t.TempDir()
	tests := []struct {
		name     string
		giveArgs []string
		wantCode int
		wantErr  string
	}{
		{"NoPath", nil, 2, "no PATH given"},
		{"MissingDir", []string{filepath.Join(work, "absent")}, 1, "absent: no such file or directory"},
		{"UnknownFlag", []string{"--bogus", work}, 2, "flag provided but not defined"},
		{"BadAlgo", []string{"--algo", "md5", work}, 2, "--algo"},
		{"BadWorkers", []string{"--workers", "0", work}, 2, "--workers"},
		{"BadLogLevel", []string{"--log-level", "loud", work}, 2, "--log-level"},
		{"EmptyLogLevel", []string{"--log-level", "", work}, 2, "--log-level"},
		{"UndocumentedLogLevel", []string{"--log-level", "fatal", work}, 2, "want off, debug, info, warn or error"},
		{"EmptyRoot", []string{"manifest", "--root", ""}, 2, "--root: empty path"},
		{"ManifestArg", []string{"manifest", "x"}, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fxsum(t, work, nil, tt.giveArgs...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
	r := mustOK(t, fxsum(t, work, nil, "--help"))
	for _, want := range []string{"Usage:", "--db", "--workers", "--algo", "--rehash", "--follow", "--quiet", "--log-level", "manifest", "verify"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "fxsum.db")); !os.IsNotExist(err) {
		t.Errorf("a usage error created the database: %v", err)
	}
}

func TestSymlinks(t *testing.T) {
	tr := genTree(t, 20)
	outside := t.TempDir()
	target := filepath.Join(outside, "target")
	if err := os.WriteFile(target, []byte("linked"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ old, new string }{
		{target, filepath.Join(tr.root, "link-to-file")},
		{tr.root, filepath.Join(tr.root, "d1", "loop")},
		{filepath.Join(outside, "absent"), filepath.Join(tr.root, "dangling")},
	} {
		if err := os.Symlink(l.old, l.new); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")

	r := mustOK(t, fxsum(t, work, nil, tr.root))
	if s := parseSummary(t, r.stderr); s.errors != 0 {
		t.Errorf("not following: %d errors, want 0; stderr:\n%s", s.errors, r.stderr)
	}
	checkIndex(t, dbFile, tr)

	r = fxsum(t, work, nil, "--follow", tr.root)
	if r.code != 1 {
		t.Errorf("--follow: exit %d, want 1: two links could not be indexed", r.code)
	}
	if s := parseSummary(t, r.stderr); s.errors != 2 {
		t.Errorf("--follow: %d errors, want 2 (the loop, the dangling link); stderr:\n%s", s.errors, r.stderr)
	}
	for _, want := range []string{"loop: symbolic link loop", "dangling: no such file or directory"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("--follow: stderr does not report %q:\n%s", want, r.stderr)
		}
	}
	sum := sha256.Sum256([]byte("linked"))
	tr.files[filepath.Join(tr.root, "link-to-file")] = hex.EncodeToString(sum[:])
	checkIndex(t, dbFile, tr)
}

func TestUnreadableIsReportedNotFatal(t *testing.T) {
	tr := genTree(t, 30)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	run := func() result { return fxsum(t, work, nil, tr.root) }
	if os.Geteuid() == 0 {
		// Root reads files whatever their mode: run fxsum as nobody, who
		// must reach the binary, the tree and the working directory.
		for _, p := range []string{filepath.Dir(fxsumBin), tr.root, work} {
			for d := p; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
		}
		run = func() result {
			t.Helper()
			cmd := command(t, work, nil, tr.root)
			asNobody(cmd)
			return runCmd(t, cmd)
		}
	}
	mustOK(t, run())
	secret := filepath.Join(tr.root, "one")
	closed := filepath.Join(tr.root, "d2")
	for _, p := range []string{secret, closed} {
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(p, 0o755) })
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(secret, later, later); err != nil {
		t.Fatal(err)
	}
	r := run()
	if r.code != 1 || !strings.Contains(r.stderr, "2 files or folders could not be indexed") {
		t.Errorf("exit %d, want 1 and a count of what was not indexed; stderr:\n%s", r.code, r.stderr)
	}
	if s := parseSummary(t, r.stderr); s.errors != 2 {
		t.Errorf("%d errors, want 2; stderr:\n%s", s.errors, r.stderr)
	}
	// Rows under the unreadable directory are kept, not removed.
	checkIndex(t, dbFile, tr)
}

func TestVerify(t *testing.T) {
	tr := genTree(t, 200)
	work := t.TempDir()
	mustOK(t, fxsum(t, work, nil, tr.root))
	mustOK(t, fxsum(t, work, nil, "verify"))

	// Same size and mtime, other content: silent corruption.
	corrupt := filepath.Join(tr.root, "special", "with space.txt")
	fi, err := os.Stat(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte{'x'}, int(fi.Size())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(corrupt, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tr.root, "one")
	tr.remove(t, missing)
	edited := filepath.Join(tr.root, "special", "new\nline")
	if err := os.WriteFile(edited, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := fxsum(t, work, nil, "verify")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	want := strings.Join([]string{
		"missing: " + missing,
		"changed: " + displayPath(edited),
		"changed: " + corrupt + ": content differs, size and mtime do not (corruption?)",
	}, "\n")
	if got := strings.TrimSpace(r.stdout); !sameLines(got, want) {
		t.Errorf("verify printed:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(r.stderr, "2 changed, 1 missing, 0 unreadable") {
		t.Errorf("verify summary: %s", r.stderr)
	}
	// Limited to a path that has no problem: ok.
	mustOK(t, fxsum(t, work, nil, "verify", filepath.Join(tr.root, "d1")))
}

func sameLines(a, b string) bool {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x) != len(y) {
		return false
	}
	seen := map[string]int{}
	for _, l := range x {
		seen[l]++
	}
	for _, l := range y {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestRunInProcess runs run itself, so that the race detector and goleak see
// the pool, the walker and the batches at work.
func TestRunInProcess(t *testing.T) {
	tr := genTree(t, 400, 1<<20)
	dbFile := filepath.Join(t.TempDir(), "x.db")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--db", dbFile, "--workers", strconv.Itoa(runtime.GOMAXPROCS(0) + 2), tr.root}, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	checkIndex(t, dbFile, tr)
	errb.Reset()
	if err := run(context.Background(), []string{"verify", "--db", dbFile, "--quiet"}, &out, &errb); err != nil {
		t.Fatalf("verify: %v\n%s", err, errb.String())
	}
	if errb.Len() != 0 || out.Len() != 0 {
		t.Errorf("verify --quiet printed %q, %q", out.String(), errb.String())
	}
}

// TestDatabaseInsideTheTreeIsNotIndexed: the README's `fxsum .` keeps its
// database in the tree it indexes; the database changes while it would be
// hashed, so fxsum leaves it and SQLite's side files out.
func TestDatabaseInsideTheTreeIsNotIndexed(t *testing.T) {
	tr := genTree(t, 20)
	for range 2 {
		mustOK(t, fxsum(t, tr.root, nil, "."))
	}
	dbFile := filepath.Join(tr.root, "fxsum.db")
	checkIndex(t, dbFile, tr)
	r := mustOK(t, fxsum(t, tr.root, nil, "manifest"))
	if strings.Contains(r.stdout, "fxsum.db") {
		t.Errorf("manifest lists the database:\n%s", r.stdout)
	}
	sha256sumCheck(t, tr.root, r.stdout, len(tr.files))
}

// TestConcurrentFirstRuns: first runs that start together on a database
// that does not exist yet all succeed: one makes it, the others wait for it
// and use it. In the staged rounds, the hooks of store_testhook.go make
// every round meet in the order that failed before (one run made the
// schema; another held the write lock while it looked whether the schema
// was made; the first one's switch to WAL was refused at once): all runs
// find no database, and the one that made it tries to switch while another
// holds the lock. The free rounds start more runs at once, unordered.
func TestConcurrentFirstRuns(t *testing.T) {
	tr := genTree(t, 10)
	for _, c := range []struct {
		runs, rounds int
		staged       bool
	}{
		{runs: 2, rounds: 3, staged: true},
		{runs: 5, rounds: 2, staged: true},
		{runs: 6, rounds: 3},
	} {
		for i := range c.rounds {
			work := t.TempDir()
			var env []string
			if c.staged {
				env = []string{envFirstRuns + "=" + strconv.Itoa(c.runs), envFirstRunsDir + "=" + t.TempDir()}
			}
			cmds := make([]*exec.Cmd, c.runs)
			outs := make([]bytes.Buffer, c.runs)
			for j := range cmds {
				cmds[j] = command(t, work, env, "--quiet", tr.root)
				cmds[j].Stdout, cmds[j].Stderr = &outs[j], &outs[j]
				if err := cmds[j].Start(); err != nil {
					t.Fatal(err)
				}
			}
			for j, cmd := range cmds {
				err := cmd.Wait()
				if err != nil || outs[j].Len() != 0 {
					t.Errorf("%d runs (staged %v), round %d, run %d: %v\n%s", c.runs, c.staged, i, j, err, outs[j].String())
				}
			}
			dbFile := filepath.Join(work, "fxsum.db")
			checkIndex(t, dbFile, tr)
			if mode := journalMode(t, dbFile); mode != "wal" {
				t.Errorf("%d runs (staged %v), round %d: journal mode %q, want wal", c.runs, c.staged, i, mode)
			}
		}
	}
}

// TestRollbackDatabaseSwitchedToWAL: a database left in rollback-journal
// mode (its creator died between making the schema and switching to WAL)
// is switched by the next run, which indexes it as usual.
func TestRollbackDatabaseSwitchedToWAL(t *testing.T) {
	tr := genTree(t, 10)
	work := t.TempDir()
	mustOK(t, fxsum(t, work, nil, "--quiet", tr.root))
	dbFile := filepath.Join(work, "fxsum.db")
	db, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA journal_mode = DELETE`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if mode := journalMode(t, dbFile); mode != "rollback" {
		t.Fatalf("journal mode %q after the switch back, want rollback", mode)
	}
	mustOK(t, fxsum(t, work, nil, "--quiet", "--rehash", tr.root))
	if mode := journalMode(t, dbFile); mode != "wal" {
		t.Errorf("journal mode %q after a run, want wal", mode)
	}
	checkIndex(t, dbFile, tr)
}

// journalMode is the journal mode that the header of the database at
// dbFile records: "wal" or "rollback" (bytes 18 and 19, the file format's
// write and read versions: 2 for WAL).
func journalMode(t *testing.T, dbFile string) string {
	t.Helper()
	f, err := os.Open(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if hdr[18] == 2 && hdr[19] == 2 {
		return "wal"
	}
	return "rollback"
}
