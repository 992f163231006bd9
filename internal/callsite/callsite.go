// Package callsite names places in the user's code for error messages.
package callsite

import (
	"path/filepath"
	"strings"
)

// Short keeps the last two elements of a path: enough to find the file,
// without the machine's directories.
func Short(file string) string {
	file = filepath.ToSlash(file)
	if i := strings.LastIndexByte(file, '/'); i > 0 {
		if j := strings.LastIndexByte(file[:i], '/'); j >= 0 {
			return file[j+1:]
		}
	}
	return file
}
