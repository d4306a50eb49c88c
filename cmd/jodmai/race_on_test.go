//go:build race

package main

// raceEnabled: the race detector slows store work several times; the
// large tests shrink under it.
const raceEnabled = true
