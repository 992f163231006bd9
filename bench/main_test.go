package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a benchmark leaves a goroutine behind. The
// goroutines alive before the first test are ignored: ants starts a default
// pool, with two goroutines, when it is imported.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
