package server

import (
	"log/slog"
	"syscall"
)

// fdsPerAccount is what one open account may hold: its index, WAL and
// shared-memory files for the writer, and the index and WAL of a few
// pooled readers (store.Account keeps those few while idle).
const fdsPerAccount = 6

// fdReserve is kept for everything else: the listeners, the global and
// queue databases, the journal, body files being read and written.
const fdReserve = 200

// fitOpenAccounts lowers maxOpen so that that many open accounts and
// maxConns connections fit in the process's descriptor limit (ulimit -n);
// a server out of descriptors refuses connections and fails deliveries.
func fitOpenAccounts(maxOpen, maxConns int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return maxOpen
	}
	fit := (int(min(lim.Cur, 1<<30)) - maxConns - fdReserve) / fdsPerAccount
	fit = max(fit, 16)
	if maxOpen > fit {
		log.Warn("store.max_open_accounts lowered to fit the descriptor limit", "configured", maxOpen, "using", fit,
			"nofile", lim.Cur, "max_connections", maxConns)
		return fit
	}
	return maxOpen
}
