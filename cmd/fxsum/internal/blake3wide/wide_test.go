package blake3wide

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"
)

// testSizes are input sizes around every boundary of BLAKE3's tree and of
// Hasher's work: block, chunk, group of 16 chunks, and subtrees of groups.
var testSizes = []int{
	0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3000,
	groupSize - chunkSize - 1, groupSize - chunkSize, groupSize - chunkSize + 1,
	groupSize - 1, groupSize, groupSize + 1, groupSize + chunkSize, groupSize + chunkSize + 1,
	2*groupSize - 1, 2 * groupSize, 2*groupSize + 1, 3*groupSize + 5000,
	64<<10 - 1, 64 << 10, 64<<10 + 1,
	1<<20 - 1, 1 << 20, 1<<20 + 1, 3<<20 + 12345, 5<<20 + 1,
}

// input returns n bytes that differ at every position of a block.
func input(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func reference(data []byte) []byte {
	d := blake3.Sum256(data)
	return d[:]
}

// modes runs f with the AVX-512 kernels (if this processor has them) and
// with their Go equivalents.
func modes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer func(u bool) { useAVX512 = u }(useAVX512)
	for _, avx := range []bool{false, true} {
		if avx && !haveAVX512 {
			t.Log("no AVX-512 on this processor: only the kernels in Go are tested")
			continue
		}
		useAVX512 = avx
		t.Run(fmt.Sprintf("avx512=%v", avx), f)
	}
}

// TestDigests checks the digest of every size against
// github.com/zeebo/blake3's, whatever the sizes of the writes.
func TestDigests(t *testing.T) {
	modes(t, func(t *testing.T) {
		big := input(testSizes[len(testSizes)-1])
		for _, n := range testSizes {
			want := reference(big[:n])
			for _, step := range []int{n, 1, 64, 1000, chunkSize, groupSize - 1, groupSize, groupSize + 1, 1 << 20} {
				if step == 0 || (step < 1000 && n > 4*groupSize) {
					continue // 0, or too slow to be worth it
				}
				h := New()
				for p := big[:n]; len(p) > 0; {
					k := min(step, len(p))
					h.Write(p[:k])
					p = p[k:]
				}
				if got := h.Sum(nil); !bytes.Equal(got, want) {
					t.Errorf("%d bytes in writes of %d: %x, want %x", n, step, got, want)
				}
			}
		}
	})
}

// TestReset checks that a Hasher is reusable after Reset and that Sum does
// not change it.
func TestReset(t *testing.T) {
	data := input(3*groupSize + 17)
	h := New()
	h.Write(input(5 << 20))
	h.Reset()
	h.Write(data[:100])
	if got, want := h.Sum(nil), reference(data[:100]); !bytes.Equal(got, want) {
		t.Fatalf("after Reset: %x, want %x", got, want)
	}
	h.Write(data[100:])
	if got, want := h.Sum([]byte("prefix")), append([]byte("prefix"), reference(data)...); !bytes.Equal(got, want) {
		t.Fatalf("after more writes: %x, want %x", got, want)
	}
}

// TestKnownAnswer checks the official test vectors' input pattern (byte i
// is i mod 251) at a few lengths, against their published digests.
func TestKnownAnswer(t *testing.T) {
	vectors := map[int]string{
		0:      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
		1:      "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
		1023:   "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
		1024:   "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
		1025:   "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
		31744:  "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
		102400: "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
	}
	modes(t, func(t *testing.T) {
		for n, want := range vectors {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i % 251)
			}
			h := New()
			h.Write(data)
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				t.Errorf("%d bytes: %s, want %s", n, got, want)
			}
		}
	})
}

// TestKernels checks the AVX-512 kernels against their Go equivalents on
// random input and counters whose low word wraps within the group, the
// tail kernel on groups of random lengths.
func TestKernels(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this processor")
	}
	r := rand.New(rand.NewPCG(2, 3))
	for trial := 0; trial < 50; trial++ {
		var in [groupSize]byte
		for i := range in {
			in[i] = byte(r.Uint32())
		}
		var ctr [2][lanes]uint32
		base := r.Uint64()
		if trial%2 == 0 {
			base = 1<<32 - 7 // the low word wraps past lane 6
		}
		for i := range lanes {
			c := base + uint64(i)
			ctr[0][i], ctr[1][i] = uint32(c), uint32(c>>32)
		}
		var got, want [8][lanes]uint32
		hashChunksAVX512(&got, &in, &iv, &ctr)
		hashChunksGeneric(&want, &in, &iv, &ctr)
		if got != want {
			t.Fatalf("hashChunks: %x, want %x", got, want)
		}
		var left, right [8][lanes]uint32
		for w := range 8 {
			for i := range lanes {
				left[w][i], right[w][i] = r.Uint32(), r.Uint32()
			}
		}
		hashParentsAVX512(&got, &left, &right, &iv)
		hashParentsGeneric(&want, &left, &right, &iv)
		if got != want {
			t.Fatalf("hashParents: %x, want %x", got, want)
		}
		hashParentsAVX512(&left, &left, &right, &iv) // in place
		if left != want {
			t.Fatalf("hashParents in place: %x, want %x", left, want)
		}
		// The tail kernel stores only the lanes of the chunks of the
		// first n bytes, each after its last block.
		n := 1 + r.IntN(groupSize)
		var meta tailMeta
		meta.set(n)
		got, want = right, right
		hashChunksTailAVX512(&got, &in, &iv, &ctr, &meta)
		hashChunksTailGeneric(&want, &in, &iv, &ctr, &meta)
		if got != want {
			t.Fatalf("hashChunksTail of %d bytes: %x, want %x", n, got, want)
		}
	}
}

// TestGenerated checks that kernels_amd64.s is what gen.go writes.
func TestGenerated(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run gen.go")
	}
	out := filepath.Join(t.TempDir(), "kernels.s")
	if b, err := exec.Command(goTool, "run", "gen.go", "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("kernels_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("kernels_amd64.s is not what gen.go writes: go generate")
	}
}
