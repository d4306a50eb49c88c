//go:build race

package load

// Under the race detector every connection, fsync and argon2id check costs
// several times more (and memory several times more): hold 240 connections
// instead of 2,000 and run 8 logins at a time, so the run stays well under a
// minute on a two-core machine even beside other packages' tests.
func init() {
	totalConns = 240
	loginParallel = 8
}
