package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSHA256SingleBuffer is the ceiling of one core: crypto/sha256 over
// one buffer that stays in cache, no I/O.
func BenchmarkSHA256SingleBuffer(b *testing.B) {
	buf := bytes.Repeat([]byte{0x5a}, readBufSize)
	h := sha256.New()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkHashFile is what one fxsum worker does with a file in the page
// cache: open, fstat, read into its buffer, hash, fstat.
func BenchmarkHashFile(b *testing.B) {
	for _, algo := range []string{"sha256", "blake3"} {
		for _, size := range []int{4 << 10, 16 << 20} {
			b.Run(fmt.Sprintf("%s/%d", algo, size), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "f")
				if err := os.WriteFile(path, bytes.Repeat([]byte{0xa5}, size), 0o644); err != nil {
					b.Fatal(err)
				}
				buf, hs := newReadBuf(), newHashers()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := hashFile(context.Background(), path, algo, false, nil, buf, hs, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBatch is what one worker's batch costs per row in a new index:
// rows of one directory, sorted by name, committed 4096 at a time.
func BenchmarkBatch(b *testing.B) {
	ctx := context.Background()
	db, err := openDB(ctx, filepath.Join(b.TempDir(), "b.db"), true)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	bt, err := newBatch(ctx, &writeLock{}, conn, defaultBatchRows, nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "some", "folder")
	digest := bytes.Repeat([]byte{0xa5}, 32)
	i := 0
	for b.Loop() {
		i++
		r := fileRow{dir: dir, name: fmt.Sprintf("f%09d", i), state: fileState{size: 200, mtime: int64(i)}, algo: "sha256", digest: digest}
		if err := bt.Add(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
