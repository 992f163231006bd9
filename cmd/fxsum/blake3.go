package main

import (
	"hash"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/guts"
)

// blake3Hash is BLAKE3-256 from lukechampine.com/blake3, with a fast path
// for inputs of up to smallBLAKE3 bytes, most files of most trees: the
// library's Hasher compresses such an input one chunk at a time, or
// starts goroutines for it, while guts.CompressBuffer compresses all its
// chunks at once with AVX2 or AVX-512. A longer input goes to the Hasher.
// It is not safe for concurrent use.
type blake3Hash struct {
	buf     [smallBLAKE3]byte
	n       int
	big     *blake3.Hasher
	spilled bool // the input is longer than buf: it is in big
}

const smallBLAKE3 = guts.MaxSIMD * guts.ChunkSize

func newBLAKE3() hash.Hash { return &blake3Hash{big: blake3.New(32, nil)} }

func (h *blake3Hash) Write(p []byte) (int, error) {
	if !h.spilled && h.n+len(p) <= len(h.buf) {
		h.n += copy(h.buf[h.n:], p)
		return len(p), nil
	}
	if !h.spilled {
		h.big.Reset()
		_, _ = h.big.Write(h.buf[:h.n])
		h.spilled = true
	}
	return h.big.Write(p)
}

func (h *blake3Hash) Sum(b []byte) []byte {
	if h.spilled {
		return h.big.Sum(b)
	}
	// The tree of up to MaxSIMD chunks, its root node marked as the root.
	n := guts.CompressBuffer(&h.buf, h.n, &guts.IV, 0, 0)
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	return append(b, out[:32]...)
}

func (h *blake3Hash) Reset()         { h.n, h.spilled = 0, false }
func (h *blake3Hash) Size() int      { return 32 }
func (h *blake3Hash) BlockSize() int { return 64 }
