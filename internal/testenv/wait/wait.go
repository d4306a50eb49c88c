// Package wait is the one way jodmai's tests wait for something that
// happens in another goroutine or process: For polls a condition until it
// holds or a timeout passes, and fails the test with what it waited for.
//
// It is a leaf package (it imports nothing of jodmai), so that the unit
// tests of any package, internal test files included, can use it without
// an import cycle.
package wait

import (
	"testing"
	"time"
)

// interval bounds the pause between two checks; the first checks come
// sooner, so a condition that holds at once costs no sleep.
const interval = 20 * time.Millisecond

// For calls cond until it reports true, and fails the test (t.Fatalf,
// so only from the test's goroutine) if it has not by timeout, saying
// "timed out after <timeout> waiting for <what>". cond runs at least
// once, even with a timeout of 0, and always in the caller's goroutine.
//
// The timeout bounds a hung test; it is no timing assertion: choose it
// generously (seconds), as a loaded machine running -race is slow.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, interval)
	}
}
