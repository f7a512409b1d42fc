package service_test

import (
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/service/statetest"
)

func TestMemoryCatalog(t *testing.T) {
	statetest.RunCatalog(t, func(*testing.T) service.Catalog { return service.NewMemoryCatalog() })
}

func TestMemoryQueue(t *testing.T) {
	statetest.RunQueue(t, statetest.QueueOptions{}, func(_ *testing.T, workers int, lim service.Limits, now func() time.Time) service.Queue {
		return service.NewMemoryQueue(workers, lim, now)
	})
}
