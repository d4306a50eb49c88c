//go:build race

package crash

// Under the race detector the power-loss file system, served by the test
// process itself, answers several times slower, and so do the clients:
// TestPowerLoss runs 8 rounds by default instead of 20, and only reports
// (without requiring) how much of the delivery journal's rotation and
// retirement it reached. CI runs it again without -race, in full.
func init() {
	powerRaceRounds = 8
}
