package modelfile

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestNameAndNotes: meta.json's optional name and notes are read back as
// written, absent when empty (the file is what older releases wrote), and
// kept by an import; a value past its cap, not UTF-8 or with a control
// character is refused by Encode and by Decode.
func TestNameAndNotes(t *testing.T) {
	m, n := fixture(t)
	m.Name, m.Notes = "ch. 3 — η 0.5, λ 5 ✓", "first line\nsecond line\twith a tab"
	got, _, err := decodeAs(saved(t, m, n), Limits{}, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, m)
	imp, err := importBytes(saved(t, m, n), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if imp.Meta.Name != m.Name || imp.Meta.Notes != m.Notes {
		t.Errorf("import read name %q notes %q, want the file's", imp.Meta.Name, imp.Meta.Notes)
	}

	plain, _ := fixture(t)
	if meta := entry(t, encode(t, plain, n), metaEntry); strings.Contains(string(meta), `"name"`) || strings.Contains(string(meta), `"notes"`) {
		t.Errorf("meta.json of a network without name or notes: %s", meta)
	}

	for _, tc := range []struct {
		key   string
		value string
		ok    bool
	}{
		{"name", strings.Repeat("é", MaxNameLength), true},
		{"name", strings.Repeat("é", MaxNameLength+1), false},
		{"name", "two\nlines", false},
		{"name", "bell\a", false},
		{"notes", strings.Repeat("ü", MaxNotesLength), true},
		{"notes", strings.Repeat("ü", MaxNotesLength+1), false},
		{"notes", "a\x00b", false},
	} {
		data := editMeta(t, tc.key, tc.value)
		_, _, err := decodeAs(data, Limits{}, fixtureID)
		if (err == nil) != tc.ok {
			t.Errorf("%s of %d characters %.20q: read %v, want ok=%v", tc.key, len([]rune(tc.value)), tc.value, err, tc.ok)
		}
		m, n := fixture(t)
		if tc.key == "name" {
			m.Name = tc.value
		} else {
			m.Notes = tc.value
		}
		if err := Encode(io.Discard, m, n); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrText) {
			t.Errorf("Encode of %s %.20q: %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
	}
	if err := CheckName("\xff"); !errors.Is(err, ErrText) {
		t.Errorf("CheckName of invalid UTF-8: %v", err)
	}
}

// TestRestoredFrom: a restore record keeps restored_from, which must name
// an earlier epoch; records without it read as 0 (epochs trained).
func TestRestoredFrom(t *testing.T) {
	m, n := fixture(t)
	if m.History[0].Restore() {
		t.Fatal("a record without restored_from is a restore")
	}
	r := m.History[1]
	r.Epoch, r.RestoredFrom, r.ElapsedTime = m.History[len(m.History)-1].Epoch+1, 1, 0
	m.History = append(m.History, r)
	m.EpochsTrained = r.Epoch
	got, _, err := decodeAs(saved(t, m, n), Limits{}, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, m)
	if last := got.History[len(got.History)-1]; !last.Restore() || last.RestoredFrom != 1 {
		t.Errorf("restore record read back as %+v", last)
	}
	for _, from := range []int{-1, r.Epoch, r.Epoch + 1} {
		bad := m
		bad.History = append([]EpochRecord(nil), m.History...)
		bad.History[len(bad.History)-1].RestoredFrom = from
		if err := Encode(io.Discard, bad, n); err == nil {
			t.Errorf("Encode of restored_from %d in epoch %d: no error", from, r.Epoch)
		}
	}
}
