package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// a12sparse writes a sparse file of size bytes with the data extents
// given (offset, length; pseudo-random bytes), an hour old.
func a12sparse(t *testing.T, path string, size int64, extents ...[2]int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	for i, e := range extents {
		if _, err := f.WriteAt(a11random(uint64(1000+i)+uint64(e[0]), int(e[1])), e[0]); err != nil {
			f.Close()
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// a12isSparse reports whether path takes less room on disk than its size.
func a12isSparse(t *testing.T, path string) bool {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Blocks*512 < fi.Size()
}

// a12sha256File is the SHA-256 of path, computed here.
func a12sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestAttack12_SparseShapes: files with holes of every shape — at the
// start, in the middle, at the end, only a hole, data on either side of a
// 64 MiB window's edge and of the 4 GiB mark, one byte at the very end of
// a 5 GiB file — hash with sha256 and blake3 as a reference does
// (crypto/sha256 here; b3sum -c for blake3), and the index is complete.
func TestAttack12_SparseShapes(t *testing.T) {
	const (
		KiB = int64(1) << 10
		MiB = KiB << 10
		GiB = MiB << 10
	)
	root := t.TempDir()
	shapes := []struct {
		name    string
		size    int64
		extents [][2]int64
	}{
		{"all-hole-1MiB", MiB, nil},
		{"all-hole-3MiB-plus-1", 3*MiB + 1, nil},
		{"hole-at-start", 8 * MiB, [][2]int64{{6 * MiB, 2 * MiB}}},
		{"hole-in-middle", 8 * MiB, [][2]int64{{0, MiB}, {7 * MiB, MiB}}},
		{"hole-at-end", 8 * MiB, [][2]int64{{0, 3*MiB + 5}}},
		{"odd-extents", 5*MiB + 333, [][2]int64{{4095, 2}, {MiB - 1, 3}, {2*MiB + 17, 4096}, {5*MiB + 332, 1}}},
		{"window-edge", 130 * MiB, [][2]int64{{64*MiB - 10, 20}, {128*MiB - 1, 2}, {130*MiB - 4096, 4096}}},
		{"over-4GiB", 5*GiB + 7, [][2]int64{{0, 100}, {4*GiB - 3, 6}, {4*GiB + 64*MiB, MiB}, {5*GiB + 6, 1}}},
		{"last-byte-only", GiB, [][2]int64{{GiB - 1, 1}}},
	}
	want := make(map[string]string)
	for _, s := range shapes {
		p := filepath.Join(root, s.name)
		a12sparse(t, p, s.size, s.extents...)
		if s.size >= 8*MiB && !a12isSparse(t, p) {
			t.Skipf("%s is not sparse here: the file system has no holes", p)
		}
	}
	for _, s := range shapes {
		p := filepath.Join(root, s.name)
		want[p] = a12sha256File(t, p)
	}
	work := t.TempDir()
	for _, algo := range []string{"sha256", "blake3"} {
		t.Run(algo, func(t *testing.T) {
			dbFile := filepath.Join(work, algo+".db")
			r, hung := a11(t, work, 3*time.Minute, "--db", dbFile, "--algo", algo, "--quiet", root)
			if hung || r.code != 0 {
				t.Fatalf("index --algo %s: exit %d (hung %v); stderr:\n%s", algo, r.code, hung, r.stderr)
			}
			m := a11ok(t, work, "--db", dbFile, "manifest", "--algo", algo)
			if algo == "sha256" {
				got := make(map[string]string)
				for _, l := range strings.Split(strings.TrimRight(m.stdout, "\n"), "\n") {
					d, p, _ := strings.Cut(l, "  ")
					got[p] = d
				}
				for p, d := range want {
					if got[p] != d {
						t.Errorf("%s: fxsum %q, crypto/sha256 %q", filepath.Base(p), got[p], d)
					}
				}
				if len(got) != len(want) {
					t.Errorf("manifest has %d lines, want %d", len(got), len(want))
				}
				return
			}
			if bad := a11check(t, "b3sum", "/", m.stdout, len(shapes)); bad != "" {
				t.Errorf("b3sum -c of fxsum's blake3 manifest of sparse files:\n%s", bad)
			}
		})
	}
}

// TestAttack12_HolePunchedWhileHashed: holes are punched (fallocate
// PUNCH_HOLE, as `fallocate -p` does) in a 96 MiB file, an hour old,
// while fxsum hashes it (sha256 and blake3, one worker). Punching changes
// the content and the modification time, not the size. The run must
// record a digest of the file as it was between two punches (before the
// first, after some, or after all), or report the file (exit 1): never a
// digest of a mix it read half before and half after a punch.
func TestAttack12_HolePunchedWhileHashed(t *testing.T) {
	const (
		MiB   = 1 << 20
		size  = 96 * MiB
		holes = 8
	)
	root := t.TempDir()
	p := filepath.Join(root, "becomes-sparse")
	data := a11random(77, size)
	// The holes, from the end backwards, so that a reader that goes
	// forwards meets a punched region after it began.
	hole := func(k int) (off, n int64) { return int64(size - (k+1)*10*MiB + 4096), 6 * MiB }
	states := make(map[string]int) // digest of the file after k punches -> k
	{
		b := append([]byte(nil), data...)
		for k := 0; k <= holes; k++ {
			if k > 0 {
				off, n := hole(k - 1)
				clear(b[off : off+n])
			}
			s := sha256.Sum256(b)
			states[hex.EncodeToString(s[:])] = k
		}
	}
	b3states := make(map[string]int)
	if _, err := exec.LookPath("b3sum"); err == nil {
		b := append([]byte(nil), data...)
		for k := 0; k <= holes; k++ {
			if k > 0 {
				off, n := hole(k - 1)
				clear(b[off : off+n])
			}
			cmd := exec.Command("b3sum", "--no-names", "-")
			cmd.Stdin = strings.NewReader(string(b))
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			b3states[strings.TrimSpace(string(out))] = k
		}
	}
	work := t.TempDir()
	for _, algo := range []string{"sha256", "blake3"} {
		t.Run(algo, func(t *testing.T) {
			want := states
			if algo == "blake3" {
				if len(b3states) == 0 {
					t.Skip("b3sum is not installed")
				}
				want = b3states
			}
			a11write(t, p, data, time.Now().Add(-time.Hour))
			// Read it once so that it lies in the page cache (and is mapped).
			_ = a12sha256File(t, p)
			dbFile := filepath.Join(work, algo+".db")
			cmd := command(t, work, a11env(), "--db", dbFile, "--algo", algo, "--workers", "1", "--quiet", p)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Punch once fxsum has the file open.
			a12waitOpen(t, cmd.Process.Pid, p, done)
			punched := 0
		loop:
			for k := range holes {
				select {
				case <-done:
					break loop
				default:
				}
				off, n := hole(k)
				if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
					f.Close()
					<-done
					t.Skipf("fallocate PUNCH_HOLE: %v", err)
				}
				punched++
				time.Sleep(time.Duration(2+k%4) * time.Millisecond)
			}
			f.Close()
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				_ = cmd.Process.Kill()
				<-done
				t.Fatal("fxsum hung")
			}
			code := cmd.ProcessState.ExitCode()
			t.Logf("%d holes punched while fxsum ran; exit %d", punched, code)
			switch code {
			case 1:
				return // reported: fine
			case 0:
			default:
				t.Fatalf("exit %d, want 0 or 1", code)
			}
			m := a11ok(t, work, "--db", dbFile, "manifest", "--algo", algo)
			d, _, _ := strings.Cut(strings.TrimSpace(m.stdout), "  ")
			if k, ok := want[d]; !ok {
				t.Errorf("--algo %s: the index holds %s for the file, the digest of none of its states (0 to %d holes punched)", algo, d, punched)
			} else {
				t.Logf("the index holds the state after %d punches", k)
			}
			// And the next run sees a changed file and gets the last state.
			a11ok(t, work, "--db", dbFile, "--algo", algo, "--quiet", p)
			m = a11ok(t, work, "--db", dbFile, "manifest", "--algo", algo)
			d, _, _ = strings.Cut(strings.TrimSpace(m.stdout), "  ")
			if k := want[d]; k != punched || d == "" {
				t.Errorf("--algo %s: after a rerun the index holds the state after %d punches, want %d (%s)", algo, k, punched, fmt.Sprint(d != ""))
			}
		})
	}
}

// a12waitOpen waits until process pid has path open (or ends).
func a12waitOpen(t *testing.T, pid int, path string, done <-chan struct{}) {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		select {
		case <-done:
			return
		default:
		}
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			t.Skipf("no %s: %v", fdDir, err)
		}
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && l == path {
				return
			}
		}
		time.Sleep(50 * time.Microsecond)
	}
}
