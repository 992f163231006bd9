package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxpool/fxpool/cmd/fxsum/internal/blake3wide"
)

// BenchmarkBLAKE3BySize is what one worker does with a file in the page
// cache, hashed with BLAKE3 by zeebo/blake3 (read) and by blake3wide (read
// below mapMin, mapped from it): the measure of wideBLAKE3Min.
func BenchmarkBLAKE3BySize(b *testing.B) {
	if !blake3wide.Supported() {
		b.Skip("no AVX-512 on this processor")
	}
	defer func(w bool) { wideBLAKE3 = w }(wideBLAKE3)
	dir := b.TempDir()
	for _, size := range []int{8 << 10, 9 << 10, 12 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 64 << 20} {
		path := filepath.Join(dir, fmt.Sprint(size))
		if err := os.WriteFile(path, blake3Input(size), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, wide := range []bool{false, true} {
			name := map[bool]string{false: "zeebo", true: "wide"}[wide]
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				wideBLAKE3 = wide
				buf, hs := newReadBuf(), newHashers()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := hashFile(context.Background(), path, "blake3", false, nil, buf, hs, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReadOrMap is a file in the page cache hashed with blake3wide,
// read into the read buffer or mapped: the measure of mapMin.
func BenchmarkReadOrMap(b *testing.B) {
	if !blake3wide.Supported() {
		b.Skip("no AVX-512 on this processor")
	}
	dir := b.TempDir()
	for _, size := range []int{128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20, 64 << 20} {
		path := filepath.Join(dir, fmt.Sprint(size))
		if err := os.WriteFile(path, blake3Input(size), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, mapped := range []bool{false, true} {
			name := map[bool]string{false: "read", true: "map"}[mapped]
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				buf, h := newReadBuf(), blake3wide.New()
				b.SetBytes(int64(size))
				for b.Loop() {
					f, err := openFile(path, false)
					if err != nil {
						b.Fatal(err)
					}
					h.Reset()
					if mapped {
						err = hashMapped(context.Background(), f, int64(size), h, nil)
					} else {
						_, err = readFile(context.Background(), f, int64(size), buf, h, nil)
					}
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
					h.Sum(nil)
				}
			})
		}
	}
}
