// Package crash holds the crash tests of jodmai.
//
// TestCrash builds the real binary, runs `jodmai serve` as a child process
// on loopback, drives SMTP deliveries and POP3 download-and-delete
// sessions against it, kills it with SIGKILL at random moments and
// restarts it, and then checks that no acknowledged message was lost, no
// message deleted by a completed POP3 QUIT came back, no message is stored
// twice, and `jodmai check` finds the store consistent. One account
// forwards its mail (keeping a copy) and is on vacation: every
// acknowledged delivery to it must also have its forwarded copy in the
// outbound queue, and its one sender at most one auto-reply.
//
// TestPowerLoss does the same with the data directory on a power-loss
// file system (internal/powerfs) and cuts the power after every SIGKILL:
// what jodmai did not fsync is gone, as after a real power failure or
// kernel crash (a SIGKILL alone proves nothing about fsync: the kernel
// still writes the page cache out). Its load adds IMAP APPEND, COPY, MOVE
// and EXPUNGE, submissions for a remote domain that wait in the outbound
// queue, and accounts created during the run; two rounds in three shrink
// the delivery journal's segments (JODMAI_TEST_JOURNAL_SEGMENT_DIVISOR) so
// that they fill and are retired under load. It skips, saying why, where
// FUSE is not available.
//
// TestStoreCrash kills a child that runs the store operations IMAP is
// built on and checks the store against the acknowledged operations.
//
// They run with `go test ./...`. For a longer soak run:
//
//	go test ./test/crash -run 'TestCrash|TestPowerLoss' -v -crash.rounds=200
//
// or JODMAI_CRASH_ROUNDS=200 (both tests take the same number of rounds).
// JODMAI_CRASH_SEED replays a run's randomness (the seed is logged),
// though timing makes no two runs the same.
package crash
