// Package crash holds the crash test of jodmai (TestCrash): it builds the
// real binary, runs `jodmai serve` as a child process on loopback, drives
// SMTP deliveries and POP3 download-and-delete sessions against it, kills it
// with SIGKILL at random moments and restarts it, and then checks that no
// acknowledged message was lost, no message deleted by a completed POP3
// QUIT came back, no message is stored twice, and `jodmai check` finds the
// store consistent.
//
// It runs with `go test ./...`. For a longer soak run:
//
//	go test ./test/crash -run TestCrash -v -crash.rounds=200
//
// or JODMAI_CRASH_ROUNDS=200. JODMAI_CRASH_SEED replays a run's randomness
// (the seed is logged), though timing makes no two runs the same.
package crash
