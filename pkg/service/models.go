package service

import (
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// History is a network's history as of one version of it.
type History struct {
	NetworkID string
	Version   uint64 // of the snapshot: the same for every request until the next epoch
	// Records are every epoch the network has trained, across jobs and
	// restarts, oldest first, epochs increasing. The slice is shared:
	// callers must not modify it.
	Records []modelfile.EpochRecord
}

// History returns the network's history as it stands after its last
// finished epoch.
func (s *Service) History(ctx context.Context, id string) (History, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return History{}, err
	}
	st := e.state.Load()
	return History{NetworkID: id, Version: st.version, Records: st.history}, nil
}

// Download returns the network's model file as stored (a NumPy .npz) and
// its size. The reader sees one complete version of the file, whatever
// saves happen meanwhile.
func (s *Service) Download(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if _, err := s.catalog.Get(ctx, id); err != nil {
		return nil, 0, stateError(err)
	}
	rc, size, err := s.store.Open(ctx, id)
	if errors.Is(err, ErrModelNotFound) {
		return nil, 0, errNetworkNotFound // deleted meanwhile
	}
	if err != nil {
		return nil, 0, &Error{Code: Internal, Message: "could not read the network's file", Err: fmt.Errorf("open network %s: %w", id, err)}
	}
	return rc, size, nil
}

// ImportOptions are given with an import.
type ImportOptions struct {
	// Name and Notes, if not nil, are the new network's; nil: the file's
	// (none for Nielsen's layout).
	Name, Notes *string
}

// Import makes a new network from a model file made elsewhere: one of ours
// (downloaded from this or another server) or Nielsen's layout saved by
// NumPy. The file is checked like any input (784 inputs, 10 outputs, the
// limits, finite values) before anything is written; its accuracy on the
// test set is measured at once. It keeps the file's name and notes unless
// o gives others.
func (s *Service) Import(ctx context.Context, r io.ReaderAt, size int64, o ImportOptions) (NetworkInfo, error) {
	if err := checkGiven(o.Name, s.limits.CheckName); err != nil {
		return NetworkInfo{}, err
	}
	if err := checkGiven(o.Notes, s.limits.CheckNotes); err != nil {
		return NetworkInfo{}, err
	}
	lim := modelfile.Limits{MaxLayers: s.limits.MaxLayers, MaxParams: s.limits.MaxParams,
		MaxMACs: s.limits.MaxMACsPerImage, MaxActivations: s.limits.MaxActivationsPerImage}
	notOurs := func(err error) error {
		return &Error{Code: Invalid, Err: err,
			Message: "not a network this server can import: " + importReason(err)}
	}
	// What the file declares tells what reading it will take, before any
	// of it is inflated.
	shape, err := modelfile.PeekImport(r, size, lim)
	if err != nil {
		return NetworkInfo{}, notOurs(err)
	}
	hold, err := s.reserve(ctx, importBytes(shape))
	if err != nil {
		return NetworkInfo{}, err
	}
	defer hold.Release()
	imp, err := modelfile.Import(r, size, lim)
	if err != nil {
		return NetworkInfo{}, notOurs(err)
	}
	if err := s.limits.CheckArch(model.ArchOf(imp.Network)); err != nil {
		return NetworkInfo{}, &Error{Code: Invalid, Message: "the imported network does not fit: " + ErrorMessage(err)}
	}
	if m := imp.Meta; m != nil && m.Seed != nil && *m.Seed > MaxSeed {
		return NetworkInfo{}, Errorf(Invalid, "not a network this server can import: its seed %d is more than %d (2^53 - 1)", *m.Seed, uint64(MaxSeed))
	}
	// Finite weights can still be so large that a neuron's sum overflows
	// and the outputs are NaN: such a network answers nothing.
	if err := imp.Network.CheckBounded(); err != nil {
		return NetworkInfo{}, &Error{Code: Invalid, Err: err,
			Message: "not a network this server can import: its weights are so large that its outputs would not be numbers"}
	}
	ds, err := s.dataset()
	if err != nil {
		return NetworkInfo{}, err
	}
	releaseCPU, err := s.takeCPU(ctx)
	if err != nil {
		return NetworkInfo{}, err
	}
	correct, err := imp.Network.Evaluate(ds.Test)
	releaseCPU()
	if err != nil {
		return NetworkInfo{}, runError("(imported)", err)
	}
	acc := float64(correct) / float64(ds.Test.Len())

	if err := s.roomForOne(ctx); err != nil {
		return NetworkInfo{}, err
	}
	// A new owner: the file's own, if it has one, is not the importer's.
	token, hash, err := newOwnerToken()
	if err != nil {
		return NetworkInfo{}, &Error{Code: Internal, Message: "could not import the network", Err: err}
	}
	release, err := s.makerSlot(ctx)
	if err != nil {
		return NetworkInfo{}, err
	}
	defer release()
	now := s.now().UTC()
	st := &state{net: imp.Network, version: s.versions.next(), trained: true, accuracy: &acc, updated: now}
	var init Init
	var seed *uint64
	var l label
	if m := imp.Meta; m != nil { // ours: keep what it knows of its life
		init, seed = Init(m.Init), m.Seed
		st.epochs, st.history = m.EpochsTrained, m.History
		l = label{m.Name, m.Notes}
	}
	if o.Name != nil {
		l.name = *o.Name
	}
	if o.Notes != nil {
		l.notes = *o.Notes
	}
	e, err := s.add(ctx, uuid.NewString(), now, init, seed, hash, l, st)
	if err != nil {
		return NetworkInfo{}, err
	}
	s.log.Info("network imported", "network_id", e.id, "architecture", e.sizes, "format", imp.Format, "accuracy", acc)
	info := e.info()
	info.OwnerToken, info.Name, info.Notes = token, l.name, l.notes
	return info, nil
}

// checkGiven checks *v with check, if v is given.
func checkGiven(v *string, check func(string) error) error {
	if v == nil {
		return nil
	}
	return check(*v)
}

// importReason is what the format says is wrong with an imported file.
func importReason(err error) string {
	if ie, ok := errors.AsType[*modelfile.ImportError](err); ok {
		return ie.Reason()
	}
	return err.Error()
}

// Kernels are the kernels of a network's first convolutional layer, as
// GET /api/networks/{id}/kernels shows them.
type Kernels struct {
	NetworkID     string
	Version       uint64 // the network's version in memory (answers are cached by it)
	Layer         int    // the layer's index in the network's layers
	EpochsTrained int
	Filters       int
	Channels      int
	Size          int
	// Weights are [Filters][Channels][Size][Size], C order.
	Weights []float64
}

// MsgNoConvLayer is the 404 for the kernels of a network without a
// convolutional layer.
const MsgNoConvLayer = "the network has no convolutional layer"

// Kernels returns the kernels of the network's first conv layer; NotFound
// (MsgNoConvLayer) if it has none, layer_sizes networks included.
func (s *Service) Kernels(ctx context.Context, id string) (Kernels, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return Kernels{}, err
	}
	st := e.state.Load()
	k, ok := model.FirstKernels(st.net)
	if !ok {
		return Kernels{}, &Error{Code: NotFound, Message: MsgNoConvLayer}
	}
	return Kernels{NetworkID: id, Version: st.version, Layer: k.Layer, EpochsTrained: st.epochs, Filters: k.Filters, Channels: k.Channels,
		Size: k.Size, Weights: k.Weights}, nil
}
