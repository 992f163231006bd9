package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/fxpool/fxpool/cmd/fxsum/internal/blake3wide"
)

// TestHashMappedFaults checks that reading the pages of a mapped file past
// its end, once it is truncated, is errTruncated (a SIGBUS recovered),
// whether the fault comes in blake3wide's AVX-512 kernels (in the second
// window) or in the copy of the last 16 KiB into its buffer
// (runtime.memmove).
func TestHashMappedFaults(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	defer func() { mappedHook = nil }()
	for _, tc := range []struct {
		name        string
		size, short int64
	}{
		{"InTheKernels", 3 * testWindow, testWindow + 4096},
		{"InTheLastCopy", mapMin + 16<<10, mapMin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, blake3Input(int(tc.size)), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := openFile(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mappedHook = func() { truncate(t, path, tc.short) }
			err = hashMapped(context.Background(), f, tc.size, blake3wide.New(), nil)
			if !errors.Is(err, errTruncated) {
				t.Errorf("err = %v, want errTruncated", err)
			}
		})
	}
}

// TestHashMappedFaultNotTruncated: a page that cannot be read although
// the file did not shrink (an I/O error: here, the file grew back to its
// size between the fault and the look at its size) is read instead, so
// that read reports the error as it is, or the file is hashed.
func TestHashMappedFaultNotTruncated(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	const size = 2 * testWindow
	data := blake3Input(size)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() { mappedHook, faultHook = nil, nil }()
	f, err := openFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mappedHook = func() { truncate(t, path, testWindow/2) }
	faultHook = func() { truncate(t, path, size) }
	if err := hashMapped(context.Background(), f, size, blake3wide.New(), nil); !errors.Is(err, errNotMapped) {
		t.Fatalf("hashMapped: err = %v, want errNotMapped", err)
	}

	// Through hashFile: the fault is followed by a read of the whole
	// file, after a Reset of the hash that took its first pages. The
	// file gets its modification time back, so that the read is taken
	// (the size and time are those of the open) and must be right.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	mappedHook = func() {
		if calls++; calls == 1 {
			truncate(t, path, testWindow/2)
		}
	}
	faultHook = func() {
		truncate(t, path, size)
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			t.Error(err)
		}
	}
	res, err := hashFile(context.Background(), path, "blake3", false, nil, newReadBuf(), newHashers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := blake3.Sum256(append(data[:testWindow/2:testWindow/2], make([]byte, size-testWindow/2)...))
	if !bytes.Equal(res.digest, want[:]) {
		t.Errorf("digest %x, want %x", res.digest, want)
	}
	if calls != 1 {
		t.Errorf("mapped %d times, want 1 (then read)", calls)
	}
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
	const size = 4*testWindow + 5000
	data := blake3Input(size)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() { mappedHook = nil }()
	buf, hs := newReadBuf(), newHashers()

	t.Run("OnceThenRehashed", func(t *testing.T) {
		// Within the first window, not on a page boundary: the rest of
		// that page reads as zeros, the next page faults.
		const short = testWindow / 2
		calls := 0
		mappedHook = func() {
			if calls++; calls == 1 {
				truncate(t, path, short+100)
			}
		}
		res, err := hashFile(context.Background(), path, "blake3", false, nil, buf, hs, nil)
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
		// Halved at every first window mapped, still large enough to be
		// mapped: the pages past the half fault, every time.
		mappedHook = func() {
			fi, err := os.Stat(path)
			if err != nil {
				t.Error(err)
				return
			}
			truncate(t, path, fi.Size()/2)
		}
		_, err := hashFile(context.Background(), path, "blake3", false, nil, buf, hs, nil)
		if !errors.Is(err, errChanged) {
			t.Errorf("err = %v, want errChanged", err)
		}
	})
}

// TestHashMappedGrows appends to a mapped file while it is hashed: the
// first time only, then at every window.
func TestHashMappedGrows(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	data := blake3Input(3*testWindow + 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	testGrowsWhileHashed(t, path, data, "blake3", func(b []byte) []byte { d := blake3.Sum256(b); return d[:] })
}

// TestHashMappedProgressAndCancel checks that a mapped file reports every
// byte to progress, and that a cancelled context stops its hashing.
func TestHashMappedProgressAndCancel(t *testing.T) {
	withWideBLAKE3(t)
	path := filepath.Join(t.TempDir(), "f")
	const size = 2*testWindow + 7
	if err := os.WriteFile(path, blake3Input(size), 0o644); err != nil {
		t.Fatal(err)
	}
	buf, hs := newReadBuf(), newHashers()
	var seen int64
	if _, err := hashFile(context.Background(), path, "blake3", false, nil, buf, hs, func(n int64) { seen += n }); err != nil {
		t.Fatal(err)
	}
	if seen != size {
		t.Errorf("progress saw %d bytes, want %d", seen, size)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := hashFile(ctx, path, "blake3", false, nil, buf, hs, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestMappable checks that files of pseudo file systems are never mapped,
// whatever their size: a sysfs file can be a device's registers. (The
// files here are harmless ones; hashMapped is given a size they do not
// have, to be sure that only their file system stops it.)
func TestMappable(t *testing.T) {
	defer func(m func(int, int64, int, int, int) ([]byte, error)) { mmap = m }(mmap)
	mapped := 0
	mmap = func(fd int, off int64, n, prot, flags int) ([]byte, error) {
		mapped++
		return syscall.Mmap(fd, off, n, prot, flags)
	}
	for _, path := range []string{"/proc/self/status", "/sys/kernel/mm/transparent_hugepage/enabled"} {
		f, err := openFile(path, true)
		if err != nil {
			t.Logf("%s: %v", path, err)
			continue
		}
		if mappable(f) {
			t.Errorf("%s: mappable", path)
		}
		if err := hashMapped(context.Background(), f, mapMin, blake3wide.New(), nil); !errors.Is(err, errNotMapped) {
			t.Errorf("%s: hashMapped: err = %v, want errNotMapped", path, err)
		}
		f.Close()
	}
	if mapped != 0 {
		t.Errorf("mmap called %d times on pseudo files", mapped)
	}

	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, blake3Input(mapMin), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !mappable(f) {
		t.Skipf("%s is on a file system that is not mapped", path)
	}
	if err := hashMapped(context.Background(), f, mapMin, blake3wide.New(), nil); err != nil || mapped != 1 {
		t.Errorf("a file of the temporary folder: err = %v, mapped %d times, want nil, 1", err, mapped)
	}
}

// TestSparseNotMapped: a file with holes is read, not mapped (each page of
// a hole mapped is a page fault), and hashes as b3sum does.
func TestSparseNotMapped(t *testing.T) {
	defer func(m func(int, int64, int, int, int) ([]byte, error)) { mmap = m }(mmap)
	mapped := 0
	mmap = func(fd int, off int64, n, prot, flags int) ([]byte, error) {
		mapped++
		return syscall.Mmap(fd, off, n, prot, flags)
	}
	path := filepath.Join(t.TempDir(), "sparse")
	size := int64(4 * mapMin)
	data := []byte("data after a hole")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size-int64(len(data))); err != nil {
		t.Fatal(err)
	}
	af, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := af.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := openFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if !mappable(f) || !sparse(f, size) {
		f.Close()
		t.Skipf("%s: a file system that is not mapped, or that keeps no holes", path)
	}
	f.Close()
	old := wideBLAKE3
	wideBLAKE3 = blake3wide.Supported()
	defer func() { wideBLAKE3 = old }()
	r, err := hashFile(context.Background(), path, "blake3", false, nil, newReadBuf(), newHashers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	copy(want[size-int64(len(data)):], data)
	ref := blake3.New()
	ref.Write(want)
	if got := ref.Sum(nil); !bytes.Equal(r.digest, got) {
		t.Errorf("digest %x, want %x", r.digest, got)
	}
	if mapped != 0 {
		t.Errorf("a sparse file was mapped %d times", mapped)
	}
}
