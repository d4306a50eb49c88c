package ua

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/jodmai/jodmai/internal/mailfile"
)

// ErrLocked is returned when another fetch or sync holds the Maildir.
var ErrLocked = errors.New("another jodmai fetch or sync is using this maildir")

// lockMaildir takes an exclusive, non-blocking lock on the Maildir so two
// fetches cannot interleave their ledgers. The lock goes with the process.
func lockMaildir(md *mailfile.Maildir) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(md.Path, "jodmai.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock maildir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock maildir: %w", err)
	}
	return func() { f.Close() }, nil
}
