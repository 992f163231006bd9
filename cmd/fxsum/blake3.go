package main

import (
	"hash"

	"github.com/zeebo/blake3"

	"github.com/fxpool/fxpool/cmd/fxsum/internal/blake3wide"
)

// newBLAKE3 returns BLAKE3-256 from github.com/zeebo/blake3, whose
// compression function is assembly: SSE4.1 within a chunk, and AVX2 across
// eight chunks at once for longer inputs. A pure-Go BLAKE3 compresses
// within a chunk one block at a time in Go, which is most of the work of
// the many small files of most trees.
func newBLAKE3() hash.Hash { return blake3.New() }

// wideBLAKE3 tells whether files of wideBLAKE3Min bytes or more are hashed
// with package blake3wide, whose AVX-512 kernels compress 16 chunks at
// once: on processors that have them. Tests turn it off and on.
var wideBLAKE3 = blake3wide.Supported()

// wideBLAKE3Min is the size from which blake3wide is faster than zeebo's
// BLAKE3: zeebo's hashes eight chunks at once with AVX2, and the rest of a
// longer input with SSE4.1, one chunk at a time; blake3wide compresses all
// the chunks of an input of up to 16 KiB at once, at the cost of 16. On a
// Xeon with AVX-512 (blake3wide's BenchmarkHash): 8 KiB 3.4-3.9 µs with
// zeebo's, 4.6 with blake3wide; 9 KiB even; 10 KiB 6.2 against 4.7.
const wideBLAKE3Min = 8<<10 + 1

// wideFor returns the reset state of blake3wide, made on first use, when
// a file of size bytes is hashed with it (algo is "blake3"), else nil.
func (h *hashers) wideFor(algo string, size int64) hash.Hash {
	if algo != "blake3" || !wideBLAKE3 || size < wideBLAKE3Min {
		return nil
	}
	if h.wide == nil {
		h.wide = blake3wide.New()
	}
	h.wide.Reset()
	return h.wide
}
