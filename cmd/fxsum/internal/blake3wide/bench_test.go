package blake3wide

import (
	"fmt"
	"hash"
	"testing"

	"github.com/zeebo/blake3"
)

// BenchmarkHash compares Hasher with github.com/zeebo/blake3 on one input
// written at once and summed, by size.
func BenchmarkHash(b *testing.B) {
	for _, n := range []int{1024, 4096, 8192, 9 << 10, 10 << 10, 11 << 10, 12 << 10, 16 << 10, 24 << 10, 32 << 10, 64 << 10, 256 << 10, 1 << 20, 64 << 20} {
		data := input(n)
		for _, c := range []struct {
			name string
			h    hash.Hash
		}{{"zeebo", blake3.New()}, {"wide", New()}} {
			b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				var out [Size]byte
				for b.Loop() {
					c.h.Reset()
					c.h.Write(data)
					c.h.Sum(out[:0])
				}
			})
		}
	}
}

// BenchmarkKernels measures the kernels alone, on data in the L1 cache.
func BenchmarkKernels(b *testing.B) {
	var in [groupSize]byte
	var out [8][lanes]uint32
	var ctr [2][lanes]uint32
	b.Run("chunks", func(b *testing.B) {
		b.SetBytes(groupSize)
		for b.Loop() {
			hashChunks(&out, &in, &ctr)
		}
	})
	b.Run("parents", func(b *testing.B) {
		for b.Loop() {
			hashParents(&out, &out, &out)
		}
	})
}
