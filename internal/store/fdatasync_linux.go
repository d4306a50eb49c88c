package store

import (
	"os"
	"syscall"
)

// fdatasync makes f's data durable without its timestamps: on a file
// whose blocks are already allocated and written (a preallocated journal
// segment), no metadata has to be written at all.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
