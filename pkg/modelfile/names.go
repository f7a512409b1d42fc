package modelfile

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// The caps of a network's name and notes (Meta.Name, Meta.Notes), in
// characters (Unicode code points). With JSON's escapes at most 6 bytes a
// character, they keep meta.json far below maxMetaSize.
const (
	MaxNameLength  = 100
	MaxNotesLength = 2000
)

// CheckName reports whether s may be a network's name: valid UTF-8, at most
// MaxNameLength characters, no control characters (a name is one line).
// "" (no name) is valid.
func CheckName(s string) error {
	return checkText("name", s, MaxNameLength, false)
}

// CheckNotes reports whether s may be a network's notes: valid UTF-8, at
// most MaxNotesLength characters, no control characters but line breaks
// and tabs. "" (no notes) is valid.
func CheckNotes(s string) error {
	return checkText("notes", s, MaxNotesLength, true)
}

// ErrText is wrapped by CheckName's and CheckNotes's errors.
var ErrText = errors.New("not a valid name or notes")

func checkText(what, s string, maxLen int, lines bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrText, what)
	}
	n := 0
	for _, r := range s {
		n++
		if n > maxLen {
			return fmt.Errorf("%w: %s is longer than %d characters", ErrText, what, maxLen)
		}
		if unicode.IsControl(r) && !(lines && (r == '\n' || r == '\r' || r == '\t')) {
			return fmt.Errorf("%w: %s holds the control character %U", ErrText, what, r)
		}
	}
	return nil
}
