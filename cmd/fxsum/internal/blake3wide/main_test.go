package blake3wide

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// hasher starts none.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
