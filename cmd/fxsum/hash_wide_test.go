package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
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
// chunk, the 16 chunks blake3wide hashes at once), of blake3wide's use and
// of mapping, and of the read buffer.
var wideSizes = []int{
	0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 16<<10 - 1, 16 << 10, 16<<10 + 1,
	64<<10 - 1, 64 << 10, 64<<10 + 1,
	wideBLAKE3Min - 1, wideBLAKE3Min, wideBLAKE3Min + 1,
	readBufSize - 1, readBufSize, readBufSize + 1,
	mapMin - 1, mapMin, mapMin + 1,
	mapSlice - 1, mapSlice, mapSlice + 1, 3*mapSlice + 12345, 9<<20 + 1,
}

// withWideBLAKE3 runs f with blake3wide on, skipping where this processor
// lacks its AVX-512 kernels (blake3wide's own tests check its kernels in Go
// everywhere).
func withWideBLAKE3(t *testing.T) {
	t.Helper()
	if !blake3wide.Supported() {
		t.Skip("no AVX-512 on this processor: fxsum hashes with zeebo/blake3 alone")
	}
	defer func(w bool) { t.Cleanup(func() { wideBLAKE3 = w }) }(wideBLAKE3)
	wideBLAKE3 = true
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
		res, err := hashFile(context.Background(), p, "blake3", false, buf, hs, nil)
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

// truncate shortens the file at path to size bytes.
func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Error(err)
	}
}

// TestHashMappedTruncated truncates a file once it is mapped, before its
// pages are hashed: reading the pages past its new end faults (SIGBUS),
// which must be neither a crash nor a digest, but a change: hashed once
// more, then reported.
func TestHashMappedTruncated(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	const size = 4*mapSlice + 5000
	data := blake3Input(size)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() { mappedHook = nil }()
	buf, hs := newReadBuf(), newHashers()

	t.Run("OnceThenRehashed", func(t *testing.T) {
		// Within the first slice, not on a page boundary: the rest of
		// that page reads as zeros, the next page faults.
		const short = mapSlice / 2
		calls := 0
		mappedHook = func() {
			if calls++; calls == 1 {
				truncate(t, path, short+100)
			}
		}
		res, err := hashFile(context.Background(), path, "blake3", false, buf, hs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := blake3.Sum256(data[:short+100]); !bytes.Equal(res.digest, want[:]) || res.state.size != short+100 {
			t.Errorf("digest %x of %d bytes, want %x of the %d left", res.digest, res.state.size, want, short+100)
		}
		if calls != 2 {
			t.Errorf("mapped %d times, want 2", calls)
		}
	})
	t.Run("AlwaysThenReported", func(t *testing.T) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// Halved at every mapping, still large enough to be mapped; the
		// last slices of the first mapping fault.
		mappedHook = func() {
			fi, err := os.Stat(path)
			if err != nil {
				t.Error(err)
				return
			}
			truncate(t, path, fi.Size()/2)
		}
		_, err := hashFile(context.Background(), path, "blake3", false, buf, hs, nil)
		if !errors.Is(err, errChanged) {
			t.Errorf("err = %v, want errChanged", err)
		}
	})
}

// TestHashMappedGrows appends to a mapped file while it is hashed: the
// first time only, then at every slice.
func TestHashMappedGrows(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	data := blake3Input(3*mapSlice + 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	appendByte := func() {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.Write([]byte{'!'}); err != nil {
			t.Error(err)
		}
	}
	buf, hs := newReadBuf(), newHashers()

	t.Run("OnceThenRehashed", func(t *testing.T) {
		changed := false
		res, err := hashFile(context.Background(), path, "blake3", false, buf, hs, func(int64) {
			if !changed {
				changed = true
				appendByte()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		want := blake3.Sum256(append(data, '!'))
		if !bytes.Equal(res.digest, want[:]) || res.state.size != int64(len(data)+1) {
			t.Errorf("digest of the second hashing not recorded: size %d", res.state.size)
		}
	})
	t.Run("KeepsGrowingThenReported", func(t *testing.T) {
		_, err := hashFile(context.Background(), path, "blake3", false, buf, hs, func(int64) { appendByte() })
		if !errors.Is(err, errChanged) {
			t.Errorf("err = %v, want errChanged", err)
		}
	})
}

// TestHashMappedProgressAndCancel checks that a mapped file reports every
// byte to progress, and that a cancelled context stops its hashing.
func TestHashMappedProgressAndCancel(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	const size = 2*mapSlice + 7
	if err := os.WriteFile(path, blake3Input(size), 0o644); err != nil {
		t.Fatal(err)
	}
	buf, hs := newReadBuf(), newHashers()
	var seen int64
	if _, err := hashFile(context.Background(), path, "blake3", false, buf, hs, func(n int64) { seen += n }); err != nil {
		t.Fatal(err)
	}
	if seen != size {
		t.Errorf("progress saw %d bytes, want %d", seen, size)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := hashFile(ctx, path, "blake3", false, buf, hs, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
