//go:build ignore

// gen writes kernels_amd64.s, the AVX-512 kernels of package blake3wide
// (go generate; -out names another file, for TestGenerated):
//
//	go run gen.go
//
// Each kernel runs the BLAKE3 compression function on 16 inputs at once,
// one in each 32-bit lane of the ZMM registers: state word i of all 16
// inputs is in one register, as is message word i. The four G functions of
// a column or diagonal step are interleaved instruction by instruction, so
// that four independent chains keep the vector units busy, and the message
// schedule is a renaming of registers, not a move.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
)

// groupSize is the input of hashChunks: 16 chunks of 1 KiB.
const groupSize = 16 * 1024

var out bytes.Buffer

func emit(format string, args ...any) { fmt.Fprintf(&out, "\t"+format+"\n", args...) }

// z names ZMM register n.
func z(n int) string { return fmt.Sprintf("Z%d", n) }

// msgPermutation is BLAKE3's message schedule: word i of round r+1 is word
// msgPermutation[i] of round r.
var msgPermutation = [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}

// rounds emits the seven rounds on state registers v and message
// registers m (by word), leaving the compressed state in v.
func rounds(v, m [16]int) {
	for r := 0; r < 7; r++ {
		// Columns, then diagonals: G(a, b, c, d, m[2i], m[2i+1]).
		for _, step := range [2][4][4]int{
			{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}},
			{{0, 5, 10, 15}, {1, 6, 11, 12}, {2, 7, 8, 13}, {3, 4, 9, 14}},
		} {
			base := 0
			if step[0][1] == 5 {
				base = 8
			}
			g := func(f func(a, b, c, d, mx, my int)) {
				for i, s := range step {
					f(v[s[0]], v[s[1]], v[s[2]], v[s[3]], m[base+2*i], m[base+2*i+1])
				}
			}
			g(func(a, b, _, _, mx, _ int) { emit("VPADDD %s, %s, %s", z(b), z(a), z(a)) })
			g(func(a, _, _, _, mx, _ int) { emit("VPADDD %s, %s, %s", z(mx), z(a), z(a)) })
			g(func(a, _, _, d, _, _ int) { emit("VPXORD %s, %s, %s", z(a), z(d), z(d)) })
			g(func(_, _, _, d, _, _ int) { emit("VPRORD $16, %s, %s", z(d), z(d)) })
			g(func(_, _, c, d, _, _ int) { emit("VPADDD %s, %s, %s", z(d), z(c), z(c)) })
			g(func(_, b, c, _, _, _ int) { emit("VPXORD %s, %s, %s", z(c), z(b), z(b)) })
			g(func(_, b, _, _, _, _ int) { emit("VPRORD $12, %s, %s", z(b), z(b)) })
			g(func(a, b, _, _, _, _ int) { emit("VPADDD %s, %s, %s", z(b), z(a), z(a)) })
			g(func(a, _, _, _, _, my int) { emit("VPADDD %s, %s, %s", z(my), z(a), z(a)) })
			g(func(a, _, _, d, _, _ int) { emit("VPXORD %s, %s, %s", z(a), z(d), z(d)) })
			g(func(_, _, _, d, _, _ int) { emit("VPRORD $8, %s, %s", z(d), z(d)) })
			g(func(_, _, c, d, _, _ int) { emit("VPADDD %s, %s, %s", z(d), z(c), z(c)) })
			g(func(_, b, c, _, _, _ int) { emit("VPXORD %s, %s, %s", z(c), z(b), z(b)) })
			g(func(_, b, _, _, _, _ int) { emit("VPRORD $7, %s, %s", z(b), z(b)) })
		}
		var next [16]int
		for i := range next {
			next[i] = m[msgPermutation[i]]
		}
		m = next
	}
}

// transpose emits the transposition of the 16x16 matrix of 32-bit words
// whose row i is in register rows[i], with the help of the free registers
// in tmp, and returns the registers that hold its columns: column i, word i
// of every row, in cols[i]. It is the transposition of transpose_vecs_512
// in BLAKE3's blake3_avx512.c, in four steps of unpacks. free is the
// registers of tmp and rows that it leaves free.
func transpose(rows [16]int, tmp []int) (cols [16]int, free []int) {
	free = append([]int(nil), tmp...)
	alloc := func() int { r := free[0]; free = free[1:]; return r }
	release := func(r int) { free = append(free, r) }
	// op computes dst = op(a, b) into a fresh register.
	op := func(ins string, a, b int) int {
		d := alloc()
		emit("%s %s, %s, %s", ins, z(b), z(a), z(d))
		return d
	}
	shuf := func(imm string, a, b int) int {
		d := alloc()
		emit("VSHUFI32X4 $%s, %s, %s, %s", imm, z(b), z(a), z(d))
		return d
	}
	// Step 1: 32-bit interleave of row pairs.
	var s1 [16]int // s1[2p] = lo(rows 2p, 2p+1), s1[2p+1] = hi
	for p := 0; p < 8; p++ {
		a, b := rows[2*p], rows[2*p+1]
		s1[2*p] = op("VPUNPCKLDQ", a, b)
		s1[2*p+1] = op("VPUNPCKHDQ", a, b)
		release(a)
		release(b)
	}
	// Step 2: 64-bit interleave: from (ab_0, ab_2, cd_0, cd_2) to
	// abcd_0..abcd_3.
	var s2 [16]int
	for q := 0; q < 4; q++ {
		ab0, ab2, cd0, cd2 := s1[4*q], s1[4*q+1], s1[4*q+2], s1[4*q+3]
		s2[4*q+0] = op("VPUNPCKLQDQ", ab0, cd0)
		s2[4*q+1] = op("VPUNPCKHQDQ", ab0, cd0)
		release(ab0)
		release(cd0)
		s2[4*q+2] = op("VPUNPCKLQDQ", ab2, cd2)
		s2[4*q+3] = op("VPUNPCKHQDQ", ab2, cd2)
		release(ab2)
		release(cd2)
	}
	// Step 3: 128-bit interleave of abcd with efgh and of ijkl with mnop.
	// 0x88 takes 128-bit lanes 0 and 2 of each source, 0xdd lanes 1 and 3.
	var s3 [16]int // s3[8h+i]: abcdefgh_i (h=0), ijklmnop_i (h=1)
	for h := 0; h < 2; h++ {
		for i := 0; i < 4; i++ {
			a, b := s2[8*h+i], s2[8*h+4+i]
			s3[8*h+i] = shuf("0x88", a, b)
			s3[8*h+4+i] = shuf("0xdd", a, b)
			release(a)
			release(b)
		}
	}
	// Step 4: the same with abcdefgh and ijklmnop.
	for i := 0; i < 8; i++ {
		a, b := s3[i], s3[8+i]
		cols[i] = shuf("0x88", a, b)
		cols[8+i] = shuf("0xdd", a, b)
		release(a)
		release(b)
	}
	return cols, free
}

// The BLAKE3 initialization vector, words 0 to 3 (the state's words 8 to
// 11 at the start of every compression).
var iv = [4]uint32{0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A}

// chunksKernel emits hashChunksAVX512: 16 whole chunks of 1 KiB at in,
// chunk i in lane i, their chaining values stored in out at the end; or,
// if tail, hashChunksTailAVX512, which takes each block's flags and length
// in every lane from meta (a tailMeta) and stores the chaining values of
// the lanes whose last block it was (by meta's masks) after each block:
// chunks shorter than 1 KiB, and lanes to leave alone. v and m are the
// state and message registers.
func chunksKernel(v, m [16]int, tail bool) {
	name, args, label := "hashChunksAVX512", "ctr *[2][16]uint32", ""
	if tail {
		name, args, label = "hashChunksTailAVX512", "ctr *[2][16]uint32, meta *tailMeta", "tail"
	}
	size := 32
	if tail {
		size = 40
	}
	fmt.Fprintf(&out, "// func %s(out *[8][16]uint32, in *[16 * 1024]byte, key *[8]uint32, %s)\n", name, args)
	fmt.Fprintf(&out, "TEXT ·%s(SB), NOSPLIT, $0-%d\n", name, size)
	emit("MOVQ out+0(FP), DI")
	emit("MOVQ in+8(FP), SI")
	emit("MOVQ key+16(FP), DX")
	emit("MOVQ ctr+24(FP), BX")
	if tail {
		emit("MOVQ meta+32(FP), R11") // the masks at 2048(R11)(CX*2)
		emit("MOVQ R11, R12")         // this block's flags at (R12), lengths at 1024(R12)
	}
	for i := 0; i < 8; i++ {
		emit("VPBROADCASTD %d(DX), %s", 4*i, z(v[i]))
	}
	emit("XORQ CX, CX")
	fmt.Fprintf(&out, "%sblock:\n", label)
	if !tail {
		// Flags: CHUNK_START (1) on block 0, CHUNK_END (2) on block 15.
		emit("XORL R9, R9")
		emit("CMPQ CX, $0")
		emit("JNE notfirst")
		emit("ORL $1, R9")
		out.WriteString("notfirst:\n")
		emit("CMPQ CX, $15")
		emit("JNE notlast")
		emit("ORL $2, R9")
		out.WriteString("notlast:\n")
	}
	// Row i of the block matrix is block CX of chunk i: load the rows
	// into the message registers, transpose with the help of Z8..Z15
	// (free until the lower state is set up).
	var rows [16]int
	for i := range rows {
		rows[i] = m[i]
		emit("VMOVDQU32 %d(SI), %s", 1024*i, z(rows[i]))
	}
	if !tail {
		// The same block of the next group's chunks, to be in the cache
		// when the next call needs it: the hardware's prefetchers do not
		// cross pages, and a group spans four (a prefetch never faults).
		// A 64 MiB input from memory hashes 30% faster.
		for i := range rows {
			emit("PREFETCHT0 %d(SI)", groupSize+1024*i)
		}
	}
	cols, free := transpose(rows, []int{8, 9, 10, 11, 12, 13, 14, 15})
	// The state's words 8 to 15 go to the registers the transposition
	// left free: the same ones in every iteration, the code being the same.
	bv := v
	copy(bv[8:], free)
	if tail {
		initLowerState(bv, "BX", "")
		emit("VMOVDQU32 1024(R12), %s", z(bv[14])) // block lengths
		emit("VMOVDQU32 (R12), %s", z(bv[15]))     // flags
	} else {
		initLowerState(bv, "BX", "R9")
	}
	rounds(bv, cols)
	for i := 0; i < 8; i++ {
		emit("VPXORD %s, %s, %s", z(bv[i+8]), z(bv[i]), z(bv[i]))
	}
	if tail {
		// Store the values of the lanes that ended with this block.
		emit("KMOVW 2048(R11)(CX*2), K1")
		for i := 0; i < 8; i++ {
			emit("VMOVDQU32 %s, K1, %d(DI)", z(v[i]), 64*i)
		}
	}
	emit("ADDQ $64, SI")
	if tail {
		emit("ADDQ $64, R12")
	}
	emit("INCQ CX")
	emit("CMPQ CX, $16")
	fmt.Fprintf(&out, "\tJNE %sblock\n", label)
	if !tail {
		for i := 0; i < 8; i++ {
			emit("VMOVDQU32 %s, %d(DI)", z(v[i]), 64*i)
		}
	}
	emit("VZEROUPPER")
	emit("RET")
	out.WriteString("\n")
}

// initLowerState emits the start of the state's words 8 to 15 in v[8:16]:
// the IV, the counter from ctr (words 12, 13), the block length 64 and the
// flags in the given general-purpose register.
func initLowerState(v [16]int, ctr string, flags string) {
	for i, w := range iv {
		emit("MOVL $0x%08X, R10", w)
		emit("VPBROADCASTD R10, %s", z(v[8+i]))
	}
	if ctr == "" {
		emit("VPXORD %s, %s, %s", z(v[12]), z(v[12]), z(v[12]))
		emit("VPXORD %s, %s, %s", z(v[13]), z(v[13]), z(v[13]))
	} else {
		emit("VMOVDQU32 (%s), %s", ctr, z(v[12]))
		emit("VMOVDQU32 64(%s), %s", ctr, z(v[13]))
	}
	if flags == "" {
		return // the caller sets words 14 and 15
	}
	emit("MOVL $64, R10")
	emit("VPBROADCASTD R10, %s", z(v[14]))
	emit("VPBROADCASTD %s, %s", flags, z(v[15]))
}

var outFile = flag.String("out", "kernels_amd64.s", "the file to write")

func main() {
	flag.Parse()
	out.WriteString("// Code generated by gen.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")

	// The state in Z0..Z15 (v[i] = Zi), the message in Z16..Z31.
	var v, m [16]int
	for i := range v {
		v[i], m[i] = i, 16+i
	}

	chunksKernel(v, m, false)
	chunksKernel(v, m, true)

	// hashParents: the 16 parents of the 32 chaining values in left then
	// right (word-major: left[w][i] is word w of value i).
	out.WriteString("\n// func hashParentsAVX512(out *[8][16]uint32, left, right *[8][16]uint32, key *[8]uint32)\n")
	out.WriteString("TEXT ·hashParentsAVX512(SB), NOSPLIT, $0-32\n")
	emit("MOVQ out+0(FP), DI")
	emit("MOVQ left+8(FP), SI")
	emit("MOVQ right+16(FP), BX")
	emit("MOVQ key+24(FP), DX")
	emit("MOVL $4, R8") // PARENT
	// Message word w of parent p is word w of value 2p (w < 8) or word
	// w-8 of value 2p+1: the even or odd lanes of the pair left[w],
	// right[w], which VPERMT2D picks with the indices in Z0 and Z1.
	emit("VMOVDQU32 evens<>(SB), Z0")
	emit("VMOVDQU32 odds<>(SB), Z1")
	for w := 0; w < 8; w++ {
		emit("VMOVDQU32 %d(SI), %s", 64*w, z(m[w]))
		emit("VMOVDQA32 %s, %s", z(m[w]), z(m[8+w]))
		emit("VPERMT2D %d(BX), Z0, %s", 64*w, z(m[w]))
		emit("VPERMT2D %d(BX), Z1, %s", 64*w, z(m[8+w]))
	}
	for i := 0; i < 8; i++ {
		emit("VPBROADCASTD %d(DX), %s", 4*i, z(v[i]))
	}
	initLowerState(v, "", "R8")
	rounds(v, m)
	for i := 0; i < 8; i++ {
		emit("VPXORD %s, %s, %s", z(v[i+8]), z(v[i]), z(v[i]))
		emit("VMOVDQU32 %s, %d(DI)", z(v[i]), 64*i)
	}
	emit("VZEROUPPER")
	emit("RET")

	out.WriteString("\n")
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&out, "DATA evens<>+%d(SB)/4, $%d\n", 4*i, 2*i)
	}
	out.WriteString("GLOBL evens<>(SB), RODATA|NOPTR, $64\n\n")
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&out, "DATA odds<>+%d(SB)/4, $%d\n", 4*i, 2*i+1)
	}
	out.WriteString("GLOBL odds<>(SB), RODATA|NOPTR, $64\n")

	if err := os.WriteFile(*outFile, out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
