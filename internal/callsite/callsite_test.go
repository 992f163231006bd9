package callsite

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestShort(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/build/app/cmd/main.go", "cmd/main.go"},
		{"cmd/main.go", "cmd/main.go"},
		{"main.go", "main.go"},
	}
	for _, tt := range tests {
		if got := Short(tt.give); got != tt.want {
			t.Errorf("Short(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
