package resources_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type (
	A struct{}
	B struct{}
)

func newPlainA() *A { return &A{} }
