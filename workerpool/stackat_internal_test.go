package workerpool

import "testing"

// stackAt tells a goroutine whose stack grew from one that did not: the
// worker serves on a fresh goroutine only after an open that grew its
// stack, and not after every open.
func TestStackAt(t *testing.T) {
	got := make(chan [2]bool)
	go func() {
		at := stackAt()
		same := stackAt() == at
		deepStack(64) // from a goroutine's first 2 KiB to 64 KiB or more
		got <- [2]bool{same, stackAt() != at}
	}()
	r := <-got
	if !r[0] {
		t.Error("two calls from one frame of a goroutine whose stack did not grow differ")
	}
	if !r[1] {
		t.Error("stackAt did not change after the goroutine's stack grew to 64 KiB")
	}
}

// deepStack uses about kib KiB of stack.
//
//go:noinline
func deepStack(kib int) byte {
	var pad [1024]byte
	pad[kib%len(pad)] = byte(kib)
	if kib == 0 {
		return pad[0]
	}
	return deepStack(kib-1) + pad[(kib*7)%len(pad)]
}
