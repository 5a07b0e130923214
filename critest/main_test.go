package critest

import (
	"testing"

	"github.com/peapod-runtime/peapod/critest/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
