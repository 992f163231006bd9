//go:build !linux

package main

import (
	"io"
	"os"
)

// readDir lists the open directory f in the order the file system returns
// its entries and returns them. each, if not nil, is called with the
// entries as they come in, at most listChunk at a time.
func readDir(f *os.File, each func([]dirent)) ([]dirent, error) {
	var list []dirent
	for {
		ents, err := f.ReadDir(listChunk)
		start := len(list)
		for _, e := range ents {
			list = append(list, dirent{name: e.Name(), typ: e.Type()})
		}
		if each != nil && len(list) > start {
			each(list[start:])
		}
		if err == io.EOF {
			return list, nil
		}
		if err != nil {
			return list, err
		}
	}
}
