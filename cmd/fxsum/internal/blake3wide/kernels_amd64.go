//go:build amd64 && !purego

//go:generate go run gen.go

package blake3wide

import "golang.org/x/sys/cpu"

// haveAVX512 reports whether the processor and the operating system
// support AVX-512 Foundation, all that the kernels use.
var haveAVX512 = cpu.X86.HasAVX512F

// hashChunksAVX512 is hashChunksGeneric with AVX-512, in kernels_amd64.s.
//
//go:noescape
func hashChunksAVX512(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32)

// hashParentsAVX512 is hashParentsGeneric with AVX-512, in kernels_amd64.s.
//
//go:noescape
func hashParentsAVX512(out *[8][lanes]uint32, left, right *[8][lanes]uint32, key *[8]uint32)

// hashChunksTailAVX512 is hashChunksTailGeneric with AVX-512, in
// kernels_amd64.s.
//
//go:noescape
func hashChunksTailAVX512(out *[8][lanes]uint32, in *[groupSize]byte, key *[8]uint32, ctr *[2][lanes]uint32, meta *tailMeta)
