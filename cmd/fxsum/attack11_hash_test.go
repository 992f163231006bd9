package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// a11sizes are the sizes to hash: around every power of two up to 64 MiB,
// around the 1024-byte chunks of BLAKE3 and its groups of 16 chunks (16
// KiB), the 8 KiB where the wide BLAKE3 starts, the 1 MiB where files are
// mapped, the 64 MiB windows of the mapping; a few at random.
func a11sizes() []int {
	set := map[int]bool{}
	add := func(n int) {
		if n >= 0 {
			set[n] = true
		}
	}
	for p := 0; p <= 26; p++ {
		for _, d := range []int{-1, 0, 1} {
			if p != 25 || d == 0 { // 32 MiB ± 1: size of the test, nothing new
				add(1<<p + d)
			}
		}
	}
	for k := 1; k <= 40; k++ { // every chunk count to 40, and around it
		for _, d := range []int{-1, 0, 1} {
			add(k*1024 + d)
		}
	}
	for _, k := range []int{3, 5, 7, 9, 15, 17, 31, 33, 63, 65, 127, 129} { // groups of 16 chunks
		for _, d := range []int{-1, 0, 1, 512} {
			add(k*16<<10 + d)
		}
	}
	for _, n := range []int{1<<20 + 1024, 1<<20 + 16<<10 + 1, 1<<20 - 1024, 8<<20 + 64<<10 + 3, 5<<20 + 777, 64<<20 + 1024 + 1} {
		add(n)
	}
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// TestAttack11_DigestsMatchReferenceTools: every digest fxsum records, for
// sha256, sha512 and blake3, is the one sha256sum, sha512sum and b3sum
// compute, for the sizes of a11sizes with random content, a few with zeros
// only and a sparse file; on the disk and on tmpfs. The manifest is
// checked by the tools themselves (the README's "fxsum manifest > SUMS;
// b3sum -c SUMS").
func TestAttack11_DigestsMatchReferenceTools(t *testing.T) {
	for _, fs := range []string{"disk", "tmpfs"} {
		t.Run(fs, func(t *testing.T) {
			var root string
			if fs == "disk" {
				root = t.TempDir()
			} else {
				root = a11shm(t)
			}
			old := time.Now().Add(-time.Hour)
			sizes := a11sizes()
			big := a11random(1, 64<<20+1025)
			for _, n := range sizes {
				a11write(t, filepath.Join(root, fmt.Sprintf("r%09d", n)), big[len(big)-n:], old)
			}
			zeros := make([]byte, 8<<20+1)
			for _, n := range []int{8193, 16385, 1 << 20, 1<<20 + 1, 8<<20 + 1} {
				a11write(t, filepath.Join(root, fmt.Sprintf("z%09d", n)), zeros[:n], old)
			}
			sparse := filepath.Join(root, "sparse")
			f, err := os.Create(sparse)
			if err != nil {
				t.Fatal(err)
			}
			if err = f.Truncate(3<<20 + 5); err == nil {
				_, err = f.WriteAt([]byte("a hole before and after"), 1<<20+17)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(sparse, old, old); err != nil {
				t.Fatal(err)
			}
			want := len(sizes) + 5 + 1
			work := t.TempDir()
			for _, algo := range []struct{ name, tool string }{{"blake3", "b3sum"}, {"sha256", "sha256sum"}, {"sha512", "sha512sum"}} {
				db := filepath.Join(work, algo.name+".db")
				a11ok(t, work, "--db", db, "--quiet", "--algo", algo.name, root)
				m := a11ok(t, work, "--db", db, "manifest", "--root", root).stdout
				if bad := a11check(t, algo.tool, root, m, want); bad != "" {
					t.Errorf("%s: %s -c of fxsum's manifest:\n%s", algo.name, algo.tool, bad)
				}
			}
		})
	}
}

// TestAttack11_FileChangedWhileHashed: a large file is truncated, extended,
// rewritten in place and replaced by a rename while fxsum --algo blake3
// (mapped, from 1 MiB) and sha256 hash it again and again. fxsum must never
// crash (SIGBUS on a mapped page past the end) nor exit other than 0 or 1;
// once the file is left alone, a rerun must give a manifest that b3sum -c
// (sha256sum -c) accepts: no wrong digest was kept.
func TestAttack11_FileChangedWhileHashed(t *testing.T) {
	for _, fs := range []string{"tmpfs", "disk"} {
		for _, algo := range []struct{ name, tool string }{{"blake3", "b3sum"}, {"sha256", "sha256sum"}} {
			t.Run(fs+"/"+algo.name, func(t *testing.T) {
				var root string
				if fs == "disk" {
					root = t.TempDir()
				} else {
					root = a11shm(t)
				}
				const size = 96 << 20
				content := a11random(7, size)
				path := filepath.Join(root, "big")
				a11write(t, path, content, time.Now().Add(-time.Hour))
				a11write(t, filepath.Join(root, "small"), content[:3<<20], time.Now().Add(-time.Hour))
				work := t.TempDir()
				stop := a11churn(func(i int) {
					switch i % 5 {
					case 0: // truncated in the middle of a mapping window
						_ = os.Truncate(path, int64((i*7919)%size))
					case 1: // extended back, other bytes
						if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
							_ = f.Truncate(size)
							_, _ = f.WriteAt([]byte(fmt.Sprint(i)), int64((i*104729)%size))
							_ = f.Close()
						}
					case 2: // replaced by a shorter file
						tmp := path + ".tmp"
						if os.WriteFile(tmp, content[:(i*31)%size], 0o644) == nil {
							_ = os.Rename(tmp, path)
						}
					case 3: // rewritten in place
						_ = os.WriteFile(path, content, 0o644)
					case 4:
						time.Sleep(time.Millisecond)
					}
				})
				crash := regexp.MustCompile(`(?i)SIGBUS|panic|fatal error|unexpected fault`)
				for i := range 12 {
					r, hung := a11(t, work, 5*time.Minute, "--algo", algo.name, "--rehash", root)
					if hung || (r.code != 0 && r.code != 1) || crash.MatchString(r.stderr) {
						stop()
						t.Fatalf("run %d while the file changes: exit %d (hung %v); stderr:\n%s", i, r.code, hung, r.stderr)
					}
				}
				stop()
				// The file left alone, its time old: a rerun must hash it (it
				// changed since the last run) and a manifest must be right.
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(path, old, old); err != nil {
					t.Fatal(err)
				}
				a11ok(t, work, "--algo", algo.name, root)
				m := a11ok(t, work, "manifest").stdout
				if bad := a11check(t, algo.tool, "/", m, 2); bad != "" {
					t.Errorf("%s -c after the file was left alone:\n%s\nmanifest:\n%s", algo.tool, bad, m)
				}
				if r := a11ok(t, work, "verify"); !strings.Contains(r.stderr, "0 changed") {
					t.Errorf("verify: %s", r.stderr)
				}
			})
		}
	}
}
