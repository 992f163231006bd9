package main

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

// algorithms are the digests fxsum computes, by the name of --algo.
var algorithms = map[string]func() hash.Hash{
	"sha256": sha256.New,
	"sha512": sha512.New,
	"blake3": newBLAKE3,
}

// readBufSize is the size of each worker's read buffer: large enough that a
// read is a small share of the hashing work, and that BLAKE3, which hashes
// each write as trees of whole chunks, makes large trees (1 MiB reads hash
// a fifth faster than 256 KiB ones).
const readBufSize = 1 << 20

// readBuf is a worker's read buffer, a per-worker resource.
type readBuf struct{ b []byte }

func newReadBuf() *readBuf { return &readBuf{b: make([]byte, readBufSize)} }

// hashers is a worker's set of hash states, one per algorithm, made on first
// use and reset before each file, and the state of blake3wide for the
// larger files hashed with BLAKE3 (blake3.go). It is a per-worker resource.
type hashers struct {
	m    map[string]hash.Hash
	wide hash.Hash
}

func newHashers() *hashers { return &hashers{m: make(map[string]hash.Hash, 1)} }

// get returns the reset hash state of algo.
func (h *hashers) get(algo string) (hash.Hash, error) {
	if s, ok := h.m[algo]; ok {
		s.Reset()
		return s, nil
	}
	mk, ok := algorithms[algo]
	if !ok {
		return nil, fmt.Errorf("unknown algorithm %q", algo)
	}
	s := mk()
	h.m[algo] = s
	return s, nil
}

// fileState is what fxsum compares to decide that a file is unchanged.
type fileState struct {
	size  int64
	mtime int64 // nanoseconds since the Unix epoch
}

func stateOf(fi os.FileInfo) fileState {
	return fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// errNotRegular reports a path that is not a regular file (any more).
var errNotRegular = errors.New("not a regular file")

// errSelf reports a file that is one of the index's own: a hard link to
// the database, which the walk cannot tell by its name.
var errSelf = errors.New("a file of the index's own database")

// errChanged reports a file that changed while it was hashed, twice.
var errChanged = errors.New("file changed while being hashed")

// hashResult is a digest and the state of the file it was computed from.
type hashResult struct {
	digest []byte
	state  fileState
	readAt int64 // when the reading began, in nanoseconds since the Unix epoch
}

// racyWindow is how recent a file's modification time may be, when it is
// read, for its state not to tell that it is unchanged on the next run:
// file systems that keep times to the second (ext3, HFS+, many NFS and SMB
// servers) or to two (FAT) give a file rewritten within that time after
// the read the same size and time as the read version. As Git does with
// its "racily clean" entries, the next run hashes such a file again.
const racyWindow = 2 * time.Second

// racy reports whether the file was modified within racyWindow of being
// read (or has a time in the future).
func (r hashResult) racy() bool { return r.state.mtime > r.readAt-int64(racyWindow) }

// hashFile hashes the regular file at path with algo. When the file's size
// or modification time differ after reading from before, it hashes once
// more, then gives up with errChanged. progress, if not nil, is called with
// the number of bytes read after every read, or every window of a mapped
// file (mmap.go). It checks ctx between reads and between windows. A file
// that self knows as the database's (a hard link to it) is not read:
// errSelf. self may be nil.
func hashFile(ctx context.Context, path, algo string, follow bool, self *selfFiles, buf *readBuf, hs *hashers, progress func(int64)) (hashResult, error) {
	for attempt := 0; ; attempt++ {
		r, stable, err := hashOnce(ctx, path, algo, follow, self, buf, hs, progress)
		if err != nil || stable {
			return r, err
		}
		if attempt == 1 {
			return hashResult{}, errChanged
		}
	}
}

func hashOnce(ctx context.Context, path, algo string, follow bool, self *selfFiles, buf *readBuf, hs *hashers, progress func(int64)) (hashResult, bool, error) {
	h, err := hs.get(algo)
	if err != nil {
		return hashResult{}, false, err
	}
	readAt := time.Now().UnixNano()
	f, err := openFile(path, follow)
	if err != nil {
		return hashResult{}, false, err
	}
	defer f.Close()
	st, id, regular, err := f.statID()
	if err != nil {
		return hashResult{}, false, err
	}
	if !regular {
		return hashResult{}, false, errNotRegular
	}
	if self.isID(id) {
		return hashResult{}, false, errSelf
	}
	// A file hashed with blake3wide and large enough is hashed where it
	// lies in the page cache, mapped, and read otherwise.
	size := st.size
	n, err := size, errNotMapped
	if w := hs.wideFor(algo, size); w != nil {
		h = w
		if size >= mapMin {
			if err = hashMapped(ctx, f, size, h, progress); errors.Is(err, errNotMapped) {
				h.Reset() // it may hold the first windows of a file then read
			}
		}
	}
	switch {
	case errors.Is(err, errNotMapped):
		if n, err = readFile(ctx, f, size, buf, h, progress); err != nil {
			return hashResult{}, false, err
		}
	case errors.Is(err, errTruncated):
		return hashResult{}, false, nil // changed: hashed once more
	case err != nil:
		return hashResult{}, false, err
	}
	after, _, err := f.stat()
	if err != nil {
		return hashResult{}, false, err
	}
	// Fewer bytes than the size, with the size and time unchanged, is a
	// file whose size is not its length: sysfs reports a page for a few
	// bytes. (A truncation changes the size.)
	stable := st == after && (n <= st.size || st.size == 0)
	return hashResult{digest: h.Sum(nil), state: st, readAt: readAt}, stable, nil
}

// readFile reads f into h through buf and returns the number of bytes
// read. It reads no more than the size the file had when opened, plus one
// byte to see whether it grew: a file that keeps growing must not keep its
// worker forever, and a change shows in the size or mtime after. A short
// read that ends at the size is the end of the file, which saves the read
// that would return 0 bytes. A file whose size is 0 is read to its end:
// files in procfs, sysfs and some FUSE and network file systems have
// content and report no size; sysfs files report a page.
func readFile(ctx context.Context, f *rfile, size int64, buf *readBuf, h hash.Hash, progress func(int64)) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		want := int64(len(buf.b))
		if size > 0 {
			want = min(want, size-n+1)
		}
		k, err := f.Read(buf.b[:want])
		if k > 0 {
			h.Write(buf.b[:k])
			n += int64(k)
			if progress != nil {
				progress(int64(k))
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if size > 0 && (n > size || n == size && int64(k) < want) {
			return n, nil // grew (n > size), or read to the size and short: the end
		}
	}
}
