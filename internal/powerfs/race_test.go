//go:build race

package powerfs

// Under the race detector the file system (served by the test process)
// and the SQLite children run several times slower: the model test takes
// fewer steps and the SQLite test skips the torn repeats of its cases.
func init() {
	raceEnabled = true
}
