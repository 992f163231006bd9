package main

import (
	"encoding/binary"
	"io/fs"
	"slices"
	"strings"
)

// dirent is a directory entry: its name and type.
type dirent struct {
	name  string
	typ   fs.FileMode
	early *earlyFile // the file, hashed as it was listed (early.go)
}

// listChunk is the most entries readDir hands to its callback at a time.
const listChunk = 1024

// sortDirents sorts list by name, byte by byte (strings.Compare's order,
// which is SQLite's BINARY collation of the index's names). A large
// directory is sorted by a radix sort on the names' bytes, eight at a time:
// a comparison sort of 150,000 names took three times as long, while the
// files wait for it to be hashed.
func sortDirents(list []dirent) {
	if len(list) < radixMin {
		slices.SortFunc(list, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
		return
	}
	keys := make([]direntKey, len(list))
	for i := range list {
		keys[i] = direntKey{i: uint32(i)}
	}
	radixSort(list, keys, make([]direntKey, len(list)), 0)
	sorted := make([]dirent, len(list))
	for i, k := range keys {
		sorted[i] = list[k.i]
	}
	copy(list, sorted)
}

// radixMin is the smallest list that sortDirents sorts by radix.
const radixMin = 256

// direntKey is the bytes off to off+8 of list[i].name, big-endian, zero
// padded: no name holds a zero byte, so that keys compare as those bytes of
// the names do, and equal keys of names that end before off+8 are equal
// names.
type direntKey struct {
	key uint64
	i   uint32
}

// nameKey is the key of the bytes of name from off.
func nameKey(name string, off int) uint64 {
	var b [8]byte
	if off < len(name) {
		copy(b[:], name[off:])
	}
	return binary.BigEndian.Uint64(b[:])
}

// radixSort sorts keys, indexes of list all equal in their first off
// bytes, by the names' bytes from off: a least significant digit radix
// sort of the key of the next eight bytes, then each run of equal keys by
// the bytes after them. tmp is scratch of len(keys).
func radixSort(list []dirent, keys, tmp []direntKey, off int) {
	if len(keys) < 64 {
		slices.SortFunc(keys, func(a, b direntKey) int { return strings.Compare(list[a.i].name[off:], list[b.i].name[off:]) })
		return
	}
	or, and := uint64(0), ^uint64(0)
	for j := range keys {
		k := nameKey(list[keys[j].i].name, off)
		keys[j].key = k
		or |= k
		and &= k
	}
	a, b := keys, tmp
	for shift := uint(0); shift < 64; shift += 8 {
		if (or&^and)>>shift&0xff == 0 {
			continue // the same byte in every key
		}
		var count [256]int
		for _, k := range a {
			count[k.key>>shift&0xff]++
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, k := range a {
			d := k.key >> shift & 0xff
			b[count[d]] = k
			count[d]++
		}
		a, b = b, a
	}
	if &a[0] != &keys[0] {
		copy(keys, a)
	}
	// Runs of equal keys: names whose next eight bytes are the same.
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].key == keys[i].key {
			j++
		}
		if j-i > 1 && keys[i].key&0xff != 0 { // a key ending in zero ends its names: they are equal
			radixSort(list, keys[i:j], tmp[i:j], off+8)
		}
		i = j
	}
}
