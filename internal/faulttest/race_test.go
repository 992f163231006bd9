//go:build race

package faulttest

// raceEnabled scales the load test down: the race detector makes every
// channel operation about ten times slower.
const raceEnabled = true
