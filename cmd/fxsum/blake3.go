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
// BLAKE3 (measured on a Xeon with AVX-512: BenchmarkBLAKE3BySize).
const wideBLAKE3Min = 128 << 10

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
