package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/fxpool/fxpool/cmd/fxsum/internal/blake3wide"
)

// wideSizes are file sizes around every boundary of BLAKE3's tree (block,
// chunk, the 16 chunks blake3wide hashes at once), of blake3wide's use, of
// the read buffer, and of mapping (mapMin, the windows of the tests).
var wideSizes = []int{
	0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 16<<10 - 1, 16 << 10, 16<<10 + 1,
	64<<10 - 1, 64 << 10, 64<<10 + 1,
	wideBLAKE3Min - 1, wideBLAKE3Min, wideBLAKE3Min + 1,
	readBufSize - 1, readBufSize, readBufSize + 1,
	mapMin - 1, mapMin, mapMin + 1,
	testWindow - 1, testWindow, testWindow + 1, 3*testWindow + 12345, 9<<20 + 1,
}

// testWindow is mapWindow in the tests that use withWideBLAKE3, for files
// of several windows to take a few MiB.
const testWindow = 2 << 20

// withWideBLAKE3 turns blake3wide on for the test, and sets mapWindow to
// testWindow, skipping where this processor lacks blake3wide's AVX-512
// kernels (blake3wide's own tests check its kernels in Go everywhere).
func withWideBLAKE3(t *testing.T) {
	t.Helper()
	if !blake3wide.Supported() {
		t.Skip("no AVX-512 on this processor: fxsum hashes with zeebo/blake3 alone")
	}
	w, mw := wideBLAKE3, mapWindow
	t.Cleanup(func() { wideBLAKE3, mapWindow = w, mw })
	wideBLAKE3, mapWindow = true, testWindow
}

// writeSizes writes a file of every size of wideSizes in dir, of
// blake3Input's content, and returns their paths.
func writeSizes(t *testing.T, dir string) []string {
	t.Helper()
	data := blake3Input(slices.Max(wideSizes))
	var paths []string
	for _, n := range wideSizes {
		p := filepath.Join(dir, fmt.Sprintf("f%d", n))
		if err := os.WriteFile(p, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestHashFileBLAKE3Sizes hashes files of every size of wideSizes with
// fxsum's BLAKE3 (zeebo's below wideBLAKE3Min, blake3wide's above, mapped
// from mapMin) and checks the digests against zeebo/blake3's of the same
// bytes and b3sum's of the files.
func TestHashFileBLAKE3Sizes(t *testing.T) {
	withWideBLAKE3(t)
	paths := writeSizes(t, t.TempDir())
	data := blake3Input(slices.Max(wideSizes))
	buf, hs := newReadBuf(), newHashers()
	got := map[string]string{}
	for i, p := range paths {
		res, err := hashFile(context.Background(), p, "blake3", false, nil, buf, hs, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", wideSizes[i], err)
		}
		got[p] = hex.EncodeToString(res.digest)
		if want := blake3.Sum256(data[:wideSizes[i]]); got[p] != hex.EncodeToString(want[:]) {
			t.Errorf("%d bytes: %s, want zeebo/blake3's %x", wideSizes[i], got[p], want)
		}
	}
	t.Run("b3sum", func(t *testing.T) {
		if _, err := exec.LookPath("b3sum"); err != nil {
			t.Skip("b3sum is not installed (apt-get install b3sum)")
		}
		out, err := exec.Command("b3sum", paths...).Output()
		if err != nil {
			t.Fatalf("b3sum: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(paths) {
			t.Fatalf("b3sum printed %d lines for %d files", len(lines), len(paths))
		}
		for _, l := range lines {
			digest, p, _ := strings.Cut(l, "  ")
			if got[p] != digest {
				t.Errorf("%s: %s, want b3sum's %s", p, got[p], digest)
			}
		}
	})
}
