//go:build !race

package network_test

// raceEnabled: see race_test.go.
const raceEnabled = false
