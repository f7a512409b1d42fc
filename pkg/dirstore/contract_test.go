package dirstore_test

import (
	"testing"

	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/service/storetest"
)

// The service's Store, as the S3 store.
var _ service.Store = (*dirstore.Store)(nil)

// TestContract runs the contract every model store meets on the directory
// store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) service.Store {
		s, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
