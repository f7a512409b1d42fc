//go:build !race

package digit_test

const raceEnabled = false
