//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
)

// rfile is a file opened for hashing, with raw system calls: open, fstat,
// read, fstat, close and nothing else per file (os.File would also try to
// register every file with the network poller).
type rfile struct {
	fd   int
	path string
}

// openFile opens path for reading. Unless follow is set, a path that has
// become a symbolic link since it was listed is refused (O_NOFOLLOW).
// O_NONBLOCK keeps a path that has become a FIFO from blocking the open.
func openFile(path string, follow bool) (*rfile, error) {
	flags := syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NONBLOCK
	if !follow {
		flags |= syscall.O_NOFOLLOW
	}
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &rfile{fd: fd, path: path}, nil
	}
}

// stat returns the file's state and whether it is a regular file.
func (f *rfile) stat() (fileState, bool, error) {
	st, _, regular, err := f.statID()
	return st, regular, err
}

// statID is stat, and the file's device and inode, from one fstat.
func (f *rfile) statID() (fileState, fileID, bool, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Fstat(f.fd, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fileState{}, fileID{}, false, &fs.PathError{Op: "fstat", Path: f.path, Err: err}
		}
		break
	}
	return fileState{size: st.Size, mtime: st.Mtim.Nano()}, fileID{dev: uint64(st.Dev), ino: st.Ino},
		st.Mode&syscall.S_IFMT == syscall.S_IFREG, nil
}

func (f *rfile) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case errors.Is(err, syscall.EAGAIN):
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: fmt.Errorf("not a regular file: %w", err)}
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *rfile) Close() error { return syscall.Close(f.fd) }
