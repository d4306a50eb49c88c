//go:build race

package load

// Under the race detector every connection and every argon2id check costs
// several times more; hold 400 connections instead of 2,000 so the run
// stays well under a minute on a two-core machine.
func init() { totalConns = 400 }
