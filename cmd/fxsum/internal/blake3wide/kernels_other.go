//go:build !amd64 || purego

package blake3wide

// haveAVX512 is false: the kernels are for amd64.
const haveAVX512 = false

func hashChunksAVX512(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32) {
	panic("blake3wide: no AVX-512 kernels on this platform")
}

func hashParentsAVX512(out *[8][lanes]uint32, left, right *[8][lanes]uint32, key *[8]uint32) {
	panic("blake3wide: no AVX-512 kernels on this platform")
}

func hashChunksTailAVX512(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32, meta *tailMeta) {
	panic("blake3wide: no AVX-512 kernels on this platform")
}
