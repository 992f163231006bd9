package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Every algorithm, at every buffer, chunk and mapping boundary, sparse files
// included, with and without AVX-512: the manifest passes the tool's -c.
func TestA16fSizesAtBoundariesAllAlgorithms(t *testing.T) {
	a16fNeed(t, "sha256sum")
	a16fNeed(t, "sha512sum")
	a16fNeed(t, "b3sum")
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385,
		65535, 65536, 65537, 131073, 1<<20 - 1, 1 << 20, 1<<20 + 1, 4<<20 + 3, 16<<20 + 1}
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*131 + n)
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("s%d", n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Truncate(96 << 20)
	_, _ = f.WriteAt([]byte("x"), 40<<20)
	f.Close()
	tools := map[string]string{"sha256": "sha256sum", "sha512": "sha512sum", "blake3": "b3sum"}
	for _, env := range [][]string{nil, {"GODEBUG=cpu.avx512f=off"}} {
		for algo, tool := range tools {
			db := filepath.Join(base, fmt.Sprintf("%s-%d.db", algo, len(env)))
			r := a16fRunOpt(t, a16fOpts{Dir: base, Env: env}, "--db", db, "--algo", algo, root)
			if r.Code != 0 {
				t.Fatalf("%s %v: %v", algo, env, r)
			}
			m := a16fRun(t, base, "manifest", "--db", db)
			sums := filepath.Join(base, "SUMS")
			if err := os.WriteFile(sums, []byte(m.Out), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tool, "-c", sums).CombinedOutput(); err != nil {
				t.Errorf("%s %v: %s -c: %v\n%s", algo, env, tool, err, out)
			}
			if got, _ := a16fParse(t, m.Out); len(got) != len(sizes)+1 {
				t.Errorf("%s: %d rows, want %d", algo, len(got), len(sizes)+1)
			}
		}
	}
}
