package dirstore_test

import (
	"testing"

	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/store/storetest"
)

// TestContract runs the contract every model store meets on the directory
// store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s, err := dirstore.Open(t.TempDir(), modelfile.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
