package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mnist-go/nnserver/pkg/network"
)

// Code classifies an Error; the HTTP layer maps each code to one status.
type Code string

// Error codes.
const (
	Invalid     Code = "invalid"     // the request is malformed or breaks a rule
	NotFound    Code = "not_found"   // no such network or job
	Conflict    Code = "conflict"    // the request conflicts with the current state (e.g. a limit)
	Unavailable Code = "unavailable" // overloaded or shutting down; try again later
	Storage     Code = "storage"     // the models directory could not be written
	Internal    Code = "internal"    // a bug or an unexpected failure
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
	errShuttingDown    = &Error{Code: Unavailable, Message: "the server is shutting down", RetryAfter: 10 * time.Second}
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
