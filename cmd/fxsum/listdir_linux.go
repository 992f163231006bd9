//go:build linux

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// direntBufSize is the buffer of getdents64: a call lists about a thousand
// entries of short names.
const direntBufSize = 32 << 10

// readDir lists the open directory f in the order the file system returns
// its entries, without "." and "..", and returns them. each, if not nil, is
// called with the entries of each system call as they come in (at most
// listChunk at a time), before readDir goes on. The names of one call
// share one allocation. An entry whose type the file system does not give
// is lstat'ed; one gone since the listing is left out, as os.ReadDir does.
func readDir(f *os.File, each func([]dirent)) ([]dirent, error) {
	fd := int(f.Fd())
	buf := make([]byte, direntBufSize)
	var list []dirent
	for {
		n, err := syscall.Getdents(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return list, &fs.PathError{Op: "readdirent", Path: f.Name(), Err: err}
		}
		if n <= 0 {
			return list, nil
		}
		start := len(list)
		list = appendDirents(list, buf[:n], f.Name())
		if each != nil {
			for i := start; i < len(list); i += listChunk {
				each(list[i:min(i+listChunk, len(list))])
			}
		}
	}
}

// The layout of struct linux_dirent64.
const (
	direntReclen = 16 // uint16
	direntType   = 18 // uint8
	direntName   = 19 // NUL-terminated
)

// appendDirents appends the entries of b, what getdents64 returned for
// dir, to list.
func appendDirents(list []dirent, b []byte, dir string) []dirent {
	// One allocation for the names of the call.
	size := 0
	for i := 0; i+direntName <= len(b); {
		reclen := int(*(*uint16)(unsafe.Pointer(&b[i+direntReclen])))
		if reclen == 0 || i+reclen > len(b) {
			break
		}
		size += reclen - direntName
		i += reclen
	}
	names := make([]byte, 0, size)
	for i := 0; i+direntName <= len(b); {
		reclen := int(*(*uint16)(unsafe.Pointer(&b[i+direntReclen])))
		if reclen == 0 || i+reclen > len(b) {
			break
		}
		rec := b[i+direntName : i+reclen]
		i += reclen
		n := 0
		for n < len(rec) && rec[n] != 0 {
			n++
		}
		if n == 0 || n == 1 && rec[0] == '.' || n == 2 && rec[0] == '.' && rec[1] == '.' {
			continue
		}
		at := len(names)
		names = append(names, rec[:n]...)
		name := unsafe.String(&names[at], n) // names is never written again
		typ, ok := direntMode(b[i-reclen+direntType])
		if !ok {
			fi, err := os.Lstat(filepath.Join(dir, name))
			if err != nil {
				continue // gone since the listing, or unreadable: as os.ReadDir
			}
			typ = fi.Mode().Type()
		}
		list = append(list, dirent{name: name, typ: typ})
	}
	return list
}

// direntMode is the type of a d_type; false for DT_UNKNOWN.
func direntMode(t byte) (fs.FileMode, bool) {
	switch t {
	case syscall.DT_REG:
		return 0, true
	case syscall.DT_DIR:
		return fs.ModeDir, true
	case syscall.DT_LNK:
		return fs.ModeSymlink, true
	case syscall.DT_FIFO:
		return fs.ModeNamedPipe, true
	case syscall.DT_SOCK:
		return fs.ModeSocket, true
	case syscall.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case syscall.DT_BLK:
		return fs.ModeDevice, true
	}
	return 0, false
}
