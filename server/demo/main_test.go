package demo

import (
	"testing"

	"github.com/hubdev/hub/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }
