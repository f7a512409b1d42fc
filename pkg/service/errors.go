package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/network"
)

// The service's error vocabulary, in this one file: the Error type and its
// codes, the errors the service answers with, the sentinels of the state
// stores and of the Store, and the functions that turn the errors of what
// the service consumes (the state stores, a request's context, the memory
// budget, the numeric core) into the client's answer.

// Code classifies an Error; the HTTP layer maps each code to one status.
type Code string

// Error codes.
const (
	Invalid     Code = "invalid"     // the request is malformed or breaks a rule
	NotFound    Code = "not_found"   // no such network or job
	Conflict    Code = "conflict"    // the request conflicts with the current state (e.g. a limit)
	Unavailable Code = "unavailable" // overloaded or shutting down; try again later
	Storage     Code = "storage"     // the models directory could not be written
	// Unauthenticated: the request needs credentials and gave none (Policy).
	Unauthenticated Code = "unauthenticated"
	// Forbidden: the credentials given do not allow the request (Policy).
	Forbidden Code = "forbidden"
	Internal  Code = "internal" // a bug or an unexpected failure
)

// Error is an error with a code and a message meant for the client.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, for Unavailable errors, is how long the client is asked
	// to wait before trying again; 0 when there is no good guess.
	RetryAfter time.Duration
	Err        error // the cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted client message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns err's code: that of the first *Error in its chain, or
// Internal.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return Internal
}

// ErrorMessage returns the message to show a client for err; internal
// details are hidden.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}

// RetryAfter returns how long a client should wait before retrying after
// err, or 0.
func RetryAfter(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.RetryAfter
	}
	return 0
}

// Messages the contract fixes word for word.
const (
	MsgNetworkNotFound = "Network not found"
	MsgJobNotFound     = "Training job not found"
	MsgCancelled       = "Training cancelled"
)

var (
	errNetworkNotFound = &Error{Code: NotFound, Message: MsgNetworkNotFound}
	errJobNotFound     = &Error{Code: NotFound, Message: MsgJobNotFound}
	ErrShuttingDown    = &Error{Code: Unavailable, Message: "the server is shutting down", RetryAfter: 10 * time.Second}
	errNetworkDeleted  = Errorf(Conflict, "the network was deleted")
	errCancelled       = Errorf(Conflict, MsgCancelled)
	errNoData          = Errorf(Internal, "the MNIST data set is not available")
)

// ctxError is the client's error when a request's context ended before the
// service could answer: its deadline passed (the answer would come too
// late), or the client left (nobody reads the answer).
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Code: Unavailable, Message: "the server could not answer in time; try again shortly",
			RetryAfter: 2 * time.Second, Err: ctx.Err()}
	}
	return &Error{Code: Unavailable, Message: "the request was cancelled", Err: context.Cause(ctx)}
}

// runError is the client's error when running a network failed: a network
// whose outputs are not numbers (weights too large, from before imports and
// training refused them) is a Conflict the client can act on; anything
// else is Internal.
func runError(id string, err error) error {
	if errors.Is(err, network.ErrNotFinite) {
		return &Error{Code: Conflict, Err: fmt.Errorf("run network %s: %w", id, err),
			Message: "the network's outputs are not numbers (its weights are too large); train it again from scratch or import another"}
	}
	return &Error{Code: Internal, Message: "could not run the network", Err: fmt.Errorf("run network %s: %w", id, err)}
}

// Errors of the state stores.
var (
	ErrUnknownNetwork = errors.New("no such network")
	ErrUnknownJob     = errors.New("no such job")
	ErrCatalogFull    = errors.New("the catalog holds the most networks allowed")
	ErrVersionMoved   = errors.New("the network was saved meanwhile by someone else")
	ErrQueueIsFull    = errors.New("the queue holds the most pending jobs allowed")
	// ErrClientQueueIsFull: the job's client has Admission.MaxQueuedPerClient
	// jobs pending already.
	ErrClientQueueIsFull = errors.New("the client has the most pending jobs allowed")
	// ErrLifetimeEpochs: the job would take its network past
	// Admission.MaxNetworkEpochs.
	ErrLifetimeEpochs = errors.New("the network would train more epochs than its life allows")
	// ErrHandOver is the cause a Queue gives a running job's context when
	// the job is to go on elsewhere (this replica is stopping, and another
	// will resume it from its last saved epoch): the job is left as it is.
	ErrHandOver = errors.New("the job is handed over to another replica")
)

// ErrModelNotFound reports that a Store holds no network under the id asked
// for: Load's and Open's errors wrap it.
var ErrModelNotFound = errors.New("no saved network with that id")

// stateError is the client's error for a failure of the Catalog or Queue:
// their sentinels map to the contract's answers, anything else means the
// shared state cannot be reached (scaled mode: Postgres is down).
func stateError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownNetwork):
		return errNetworkNotFound
	case errors.Is(err, ErrUnknownJob):
		return errJobNotFound
	case errors.As(err, new(*Error)):
		return err
	}
	return &Error{Code: Unavailable, Message: "the database is unavailable; try again shortly", RetryAfter: 5 * time.Second,
		Err: fmt.Errorf("%w: %w", errStateUnavailable, err)}
}

// errStateUnavailable marks the errors of a Catalog or Queue that could not
// be reached: a job that meets one is handed over, not failed, and resumes
// once the database is back.
var errStateUnavailable = errors.New("shared state unavailable")

// ErrJobEnded is what Queue.Epoch returns for a job that has ended (it was
// cancelled, or its network deleted, while the epoch ran).
var ErrJobEnded = Errorf(Conflict, "the job has ended")

// ErrQueueFull is the error Train returns when MaxQueuedJobs jobs are
// waiting.
var ErrQueueFull = &Error{Code: Unavailable, Message: "too many training jobs are waiting; try again later",
	RetryAfter: 10 * time.Second}

// errBusy answers a request for a new analysis while MaxAnalyses run.
var errBusy = &Error{Code: Unavailable, Message: "the server is busy analysing other networks; try again shortly",
	RetryAfter: 2 * time.Second}

// errMemoryBusy answers work the budget could not take in time.
var errMemoryBusy = &Error{Code: Unavailable, RetryAfter: 2 * time.Second,
	Message: "the server is busy: its memory or its CPU for heavy work is taken by other requests; try again shortly"}

// memoryError is the client's error for a reservation refused.
func memoryError(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, budget.ErrTooLarge):
		return &Error{Code: Conflict, Err: err,
			Message: "this needs more memory than the server's whole budget (MEMORY_BUDGET_MB); a smaller network would fit"}
	case errors.Is(err, budget.ErrBusy):
		return &Error{Code: errMemoryBusy.Code, RetryAfter: errMemoryBusy.RetryAfter, Message: errMemoryBusy.Message, Err: err}
	case ctx.Err() != nil:
		return ctxError(ctx)
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}

// errUnloaded is the cause given to an unloaded entry's context. Nothing
// runs on an idle entry, so nobody sees it.
var errUnloaded = Errorf(Internal, "the network was unloaded from memory")
