package blake3wide

import (
	"encoding/binary"
	"math/bits"
)

// BLAKE3's sizes and domain flags.
const (
	blockSize = 64
	chunkSize = 1024

	// groupSize is the input of one hashChunks: 16 chunks.
	groupSize = lanes * chunkSize
	lanes     = 16

	flagChunkStart = 1 << 0
	flagChunkEnd   = 1 << 1
	flagParent     = 1 << 2
	flagRoot       = 1 << 3
)

// iv is BLAKE3's initialization vector, also the key of the unkeyed hash.
var iv = [8]uint32{
	0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
	0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
}

// msgPermutation is BLAKE3's message schedule: word i of round r+1 is word
// msgPermutation[i] of round r.
var msgPermutation = [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}

// node is the input of one compression not made yet: the root of a tree is
// compressed with flagRoot, any other node into its chaining value.
type node struct {
	cv       [8]uint32
	block    [16]uint32
	counter  uint64
	blockLen uint32
	flags    uint32
}

func g(v *[16]uint32, a, b, c, d int, mx, my uint32) {
	v[a] += v[b] + mx
	v[d] = bits.RotateLeft32(v[d]^v[a], -16)
	v[c] += v[d]
	v[b] = bits.RotateLeft32(v[b]^v[c], -12)
	v[a] += v[b] + my
	v[d] = bits.RotateLeft32(v[d]^v[a], -8)
	v[c] += v[d]
	v[b] = bits.RotateLeft32(v[b]^v[c], -7)
}

// compress is BLAKE3's compression function, one block at a time: the
// reference for the kernels, and the hashing of what they leave (the last
// chunk, and the merges of the last few subtrees).
func (n *node) compress() [16]uint32 {
	v := [16]uint32{
		n.cv[0], n.cv[1], n.cv[2], n.cv[3], n.cv[4], n.cv[5], n.cv[6], n.cv[7],
		iv[0], iv[1], iv[2], iv[3],
		uint32(n.counter), uint32(n.counter >> 32), n.blockLen, n.flags,
	}
	m := n.block
	for r := 0; r < 7; r++ {
		g(&v, 0, 4, 8, 12, m[0], m[1])
		g(&v, 1, 5, 9, 13, m[2], m[3])
		g(&v, 2, 6, 10, 14, m[4], m[5])
		g(&v, 3, 7, 11, 15, m[6], m[7])
		g(&v, 0, 5, 10, 15, m[8], m[9])
		g(&v, 1, 6, 11, 12, m[10], m[11])
		g(&v, 2, 7, 8, 13, m[12], m[13])
		g(&v, 3, 4, 9, 14, m[14], m[15])
		var next [16]uint32
		for i, p := range msgPermutation {
			next[i] = m[p]
		}
		m = next
	}
	for i := 0; i < 8; i++ {
		v[i] ^= v[i+8]
		v[i+8] ^= n.cv[i]
	}
	return v
}

// chainingValue is the chaining value of n: the first half of its
// compression.
func (n *node) chainingValue() [8]uint32 {
	out := n.compress()
	return [8]uint32(out[:8])
}

// parent is the node of the parent of two subtrees.
func parent(left, right [8]uint32, key *[8]uint32) node {
	n := node{cv: *key, blockLen: blockSize, flags: flagParent}
	copy(n.block[:8], left[:])
	copy(n.block[8:], right[:])
	return n
}

// lastBlock compresses every block of chunk but its last, which it returns
// as a node: chunk is chunk number counter, of 0 to chunkSize bytes.
func lastBlock(chunk []byte, key *[8]uint32, counter uint64) node {
	n := node{cv: *key, counter: counter, flags: flagChunkStart}
	for len(chunk) > blockSize {
		n.blockLen = blockSize
		n.setBlock(chunk[:blockSize])
		n.cv = n.chainingValue()
		n.flags &^= flagChunkStart
		chunk = chunk[blockSize:]
	}
	n.blockLen = uint32(len(chunk))
	n.setBlock(chunk)
	n.flags |= flagChunkEnd
	return n
}

// setBlock sets n's block to b (at most a block), padded with zeros.
func (n *node) setBlock(b []byte) {
	var buf [blockSize]byte
	copy(buf[:], b)
	for i := range n.block {
		n.block[i] = binary.LittleEndian.Uint32(buf[4*i:])
	}
}

// chunkCV is the chaining value of a whole chunk.
func chunkCV(chunk []byte, key *[8]uint32, counter uint64) [8]uint32 {
	n := lastBlock(chunk, key, counter)
	return n.chainingValue()
}

// hashChunksGeneric is hashChunks in Go: the chaining values of the 16
// chunks of in, chunk i being chunk number ctr[0][i] | ctr[1][i]<<32, in
// out word-major (out[w][i] is word w of chunk i's).
func hashChunksGeneric(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32) {
	for i := 0; i < lanes; i++ {
		cv := chunkCV(in[i*chunkSize:(i+1)*chunkSize], key, uint64(ctr[0][i])|uint64(ctr[1][i])<<32)
		for w := range cv {
			out[w][i] = cv[w]
		}
	}
}

// hashParentsGeneric is hashParents in Go: the chaining values of the 16
// parents of the 32 values of left then right (word-major), parent i of
// values 2i and 2i+1.
func hashParentsGeneric(out *[8][lanes]uint32, left, right *[8][lanes]uint32, key *[8]uint32) {
	var res [8][lanes]uint32
	for i := 0; i < lanes; i++ {
		src, j := left, 2*i
		if j >= lanes {
			src, j = right, j-lanes
		}
		var l, r [8]uint32
		for w := range l {
			l[w], r[w] = src[w][j], src[w][j+1]
		}
		n := parent(l, r, key)
		cv := n.chainingValue()
		for w := range cv {
			res[w][i] = cv[w]
		}
	}
	*out = res
}

// tailMeta tells hashChunksTail each block's flags and length in every lane
// (block b of lane i: flags[b][i], blockLen[b][i]), and after which block
// to store the chaining value of which lanes (bit i of mask[b]: lane i's
// last block is b). Its layout is the kernel's.
type tailMeta struct {
	flags    [lanes][lanes]uint32
	blockLen [lanes][lanes]uint32
	mask     [lanes]uint16
}

// set describes the group of the first n bytes of a buffer of groupSize
// (n > 0): lane i is its chunk i, which may be short, and the lanes past
// its last chunk store nothing.
func (m *tailMeta) set(n int) {
	*m = tailMeta{}
	for i := 0; i < lanes && n > i*chunkSize; i++ {
		size := min(n-i*chunkSize, chunkSize)
		last := (size - 1) / blockSize
		for b := 0; b <= last; b++ {
			m.blockLen[b][i] = blockSize
		}
		m.flags[0][i] |= flagChunkStart
		m.flags[last][i] |= flagChunkEnd
		m.blockLen[last][i] = uint32(size - last*blockSize)
		m.mask[last] |= 1 << i
	}
}

// hashChunksTailGeneric is hashChunksTail in Go: lane i compresses block b
// of chunk i of in, for b from 0 to 15, with the flags and length of meta,
// and its chaining value is stored in out (word-major) after the blocks
// that meta's masks tell; the rest of out is left as it was.
func hashChunksTailGeneric(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32, meta *tailMeta) {
	for i := 0; i < lanes; i++ {
		n := node{cv: *key, counter: uint64(ctr[0][i]) | uint64(ctr[1][i])<<32}
		for b := 0; b < lanes; b++ {
			off := i*chunkSize + b*blockSize
			n.setBlock(in[off : off+blockSize])
			n.blockLen, n.flags = meta.blockLen[b][i], meta.flags[b][i]
			n.cv = n.chainingValue()
			if meta.mask[b]&(1<<i) != 0 {
				for w := range n.cv {
					out[w][i] = n.cv[w]
				}
			}
		}
	}
}
