package iostreams

import (
	"testing"

	"go.uber.org/goleak"
)

// The spinner runs a goroutine; Stop must end it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
