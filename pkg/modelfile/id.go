package modelfile

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ErrInvalidID reports an id that is not a UUID in canonical form
// (lowercase, hyphenated, 36 characters). Only such ids name networks, and
// only they become file names or object keys.
var ErrInvalidID = errors.New("network id is not a canonical lowercase UUID")

// CheckID accepts only the canonical form of a UUID, the only form this
// server hands out; its error wraps ErrInvalidID. uuid.Parse alone also
// takes upper case, braces and "urn:uuid:" prefixes; requiring the round
// trip gives each network exactly one possible file name, built from
// nothing but hex digits and hyphens.
func CheckID(id string) error {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return fmt.Errorf("%w: %.40q", ErrInvalidID, id)
	}
	return nil
}
