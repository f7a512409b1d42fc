//go:build race

package network_test

// raceEnabled tells the heavy learning tests that the race detector slows
// training five to ten times, so they check fewer seeds or epochs.
const raceEnabled = true
