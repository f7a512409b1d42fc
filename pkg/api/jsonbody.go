package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
)

// JSON request bodies are read as a stream of tokens, never decoded whole
// into maps and slices of interfaces: a field's value goes straight into
// the Go value it stands for (a number into a float64, a list of numbers
// into a []float64 no longer than the rule allows), unknown fields are
// skipped token by token, and nesting is bounded. What a body costs is
// then a small multiple of its largest token (a string, a number), not of
// its whole size: a 1 MiB list of zeros costs kilobytes
// (bodyReadFactor bounds it for the memory budget).

// maxNesting bounds the arrays and objects open at once in a request body.
const maxNesting = 32

// errSyntax marks a body that is not valid JSON.
var errSyntax = errors.New("request body is not valid JSON")

// errTooDeep: a body nests deeper than maxNesting.
var errTooDeep = fmt.Errorf("request body nests arrays and objects more than %d deep", maxNesting)

// fieldVisitor reads the value of one field of the top-level object: it
// must consume exactly that value from v. A *clientError it returns is
// answered as is (400); a syntax error as invalid JSON.
type fieldVisitor func(key string, v *valueReader) error

// clientError is a message for the client about a value it sent.
type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

func badValue(format string, args ...any) error { return &clientError{fmt.Sprintf(format, args...)} }

// readObject reads a request body that must be a JSON object, or empty,
// calling visit for each field in order (a repeated key is visited again:
// the last one wins, as with a map). It answers the client itself and
// returns false when the body is too large (413), of another content type
// (415), not JSON, not an object, too deeply nested, followed by more data,
// or when visit refuses a value (400); or when the memory budget cannot
// take it (503).
func readObject(c *gin.Context, visit fieldVisitor) bool {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			// An empty body with another type is the defaults, as before.
			if !emptyBody(c) {
				writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return false
			}
			return true
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	dec.UseNumber()
	v := &valueReader{dec: dec}
	err := v.object(visit)
	if errors.Is(err, io.EOF) && v.tokens == 0 {
		return true // an empty body: the defaults
	}
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return true
		}
		if err == nil || isSyntax(err) {
			writeError(c, http.StatusBadRequest, "request body has data after the JSON value")
			return false
		}
	}
	answerBodyError(c, err)
	return false
}

// emptyBody reports whether the request body holds nothing but white
// space, reading at most a little of it.
func emptyBody(c *gin.Context) bool {
	buf := make([]byte, 512)
	r := io.LimitReader(c.Request.Body, MaxBodyBytes)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
				return false
			}
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// answerBodyError answers an error met while reading a JSON body.
func answerBodyError(c *gin.Context, err error) {
	var ce *clientError
	switch {
	case tooLarge(err):
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
	case isBusy(err):
		writeBusy(c, err)
	case errors.As(err, &ce):
		writeError(c, http.StatusBadRequest, ce.msg)
	case errors.Is(err, errTooDeep):
		writeError(c, http.StatusBadRequest, errTooDeep.Error())
	case errors.Is(err, errNotObject):
		writeError(c, http.StatusBadRequest, "request body must be a JSON object")
	case isSyntax(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		writeError(c, http.StatusBadRequest, errSyntax.Error())
	default:
		writeError(c, http.StatusBadRequest, "could not read the request body")
	}
}

var errNotObject = errors.New("not an object")

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, errSyntax)
}

// valueReader reads JSON values token by token.
type valueReader struct {
	dec    *json.Decoder
	tokens int
}

func (v *valueReader) token() (json.Token, error) {
	t, err := v.dec.Token()
	if err == nil {
		v.tokens++
	}
	return t, err
}

// object reads a whole object, calling visit for each field.
func (v *valueReader) object(visit fieldVisitor) error {
	t, err := v.token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		if d, ok := t.(json.Delim); ok {
			if err := v.skipOpen(d, 0); err != nil {
				return err
			}
		}
		return errNotObject
	}
	for v.dec.More() {
		t, err := v.token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errSyntax
		}
		if err := visit(key, v); err != nil {
			return err
		}
	}
	_, err = v.token() // '}'
	return err
}

// skip consumes one value, whatever it is, within maxNesting.
func (v *valueReader) skip() error {
	t, err := v.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); ok {
		return v.skipOpen(d, 1)
	}
	return nil
}

// skipOpen consumes the rest of an array or object whose opening delimiter
// was just read, inside outer arrays and objects.
func (v *valueReader) skipOpen(open json.Delim, outer int) error {
	if open != '[' && open != '{' {
		return errSyntax
	}
	for depth := 1; depth > 0; {
		if outer+depth > maxNesting {
			return errTooDeep
		}
		t, err := v.token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
	return nil
}

// scalar reads a value that should be a string, number, bool or null. If
// it is an array or object, it is skipped and ok is false.
func (v *valueReader) scalar() (t json.Token, ok bool, err error) {
	t, err = v.token()
	if err != nil {
		return nil, false, err
	}
	if d, isDelim := t.(json.Delim); isDelim {
		return nil, false, v.skipOpen(d, 1)
	}
	return t, true, nil
}

// numbers reads a value that should be an array of numbers, calling each
// for every element that is a number with its index. isArray is false if
// the value is not an array (it is skipped). An element that is not a
// number stops the reading with badElem set to its index (the rest of the
// array is skipped).
func (v *valueReader) numbers(each func(i int, n json.Number) error) (isArray bool, badElem int, err error) {
	t, err := v.token()
	if err != nil {
		return false, -1, err
	}
	if t != json.Delim('[') {
		if d, ok := t.(json.Delim); ok {
			return false, -1, v.skipOpen(d, 1)
		}
		return false, -1, nil
	}
	badElem = -1
	for i := 0; v.dec.More(); i++ {
		t, err := v.token()
		if err != nil {
			return true, badElem, err
		}
		if d, ok := t.(json.Delim); ok {
			if err := v.skipOpen(d, 2); err != nil {
				return true, badElem, err
			}
		}
		n, isNum := t.(json.Number)
		if !isNum {
			if badElem < 0 {
				badElem = i
			}
			continue
		}
		if badElem < 0 {
			if err := each(i, n); err != nil {
				return true, badElem, err
			}
		}
	}
	_, err = v.token() // ']'
	return true, badElem, err
}
