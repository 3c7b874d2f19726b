package memory_test

import (
	"testing"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/memory"
	"github.com/candor-en/candor/storage/storetest"
)

func TestConformance(t *testing.T) {
	storetest.TestExposures(t, func(t *testing.T) storetest.ExposureStore { return memory.New() })
	storetest.TestAuthorities(t, func(t *testing.T) keyserver.AuthorityStore { return memory.New() })
}
