package outbox_test

import (
	"testing"

	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/internal/outbox/queuetest"
)

func TestMemoryQueue(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) outbox.Queue { return outbox.NewMemoryQueue(nil) })
}
