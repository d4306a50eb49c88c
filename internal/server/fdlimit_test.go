package server

import (
	"log/slog"
	"syscall"
	"testing"
)

func TestFitOpenAccounts(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	log := slog.New(slog.DiscardHandler)
	n := int(min(lim.Cur, 1<<30))
	for _, tc := range []struct{ maxOpen, conns, want int }{
		{10, 0, min(10, max((n-fdReserve)/fdsPerAccount, 16))}, // fits, unless the limit is tiny
		{n, 0, max((n-fdReserve)/fdsPerAccount, 16)},
		{n, n, 16}, // nothing fits: a floor, not zero
	} {
		if got := fitOpenAccounts(tc.maxOpen, tc.conns, log); got != tc.want {
			t.Errorf("fitOpenAccounts(%d, %d) with nofile %d = %d, want %d", tc.maxOpen, tc.conns, n, got, tc.want)
		}
	}
}
