package api

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"
)

// JSON request bodies are read as a stream of tokens (jsontext, the token
// layer of the Go team's encoding/json/v2), never decoded whole into maps
// and slices of interfaces: a field's value goes straight into the Go value
// it stands for (a number into a float64, a list of numbers into a []float64
// no longer than its rule allows), unknown fields are skipped, and nesting
// is bounded. Numbers are parsed where they lie in the decoder's buffer,
// without an allocation each. What a body costs is then a small multiple of
// its largest token (a string), not of its size: a 1 MiB list of zeros costs
// kilobytes (jsonReadFactor bounds it for the memory budget).

// maxNesting bounds the arrays and objects open at once in a request body.
const maxNesting = 32

// fieldVisitor reads the value of one field of the top-level object: it
// must consume exactly that value from v. A *clientError it returns is
// answered as is (400); anything else as invalid JSON.
type fieldVisitor func(key string, v *valueReader) error

// clientError is a message for the client about a value it sent.
type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

var (
	errNotObject = errors.New("request body must be a JSON object")
	errTooDeep   = fmt.Errorf("request body nests arrays and objects more than %d deep", maxNesting)
	errTrailing  = errors.New("request body has data after the JSON value")
	errSyntax    = errors.New("request body is not valid JSON")
)

// readObject reads a request body that must be a JSON object, or empty,
// calling visit for each field in order (a repeated key is visited again:
// the last one wins, as with a map). It answers the client itself and
// returns false when the body is too large (413), of another content type
// (415), not JSON, not an object, too deeply nested, followed by more data,
// or when visit refuses a value (400); or when the memory budget cannot
// take it (503).
func readObject(c *gin.Context, visit fieldVisitor) bool {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			// An empty body of any type is the defaults, as it always was.
			empty, err := emptyBody(body)
			switch {
			case err != nil:
				answerBodyError(c, err)
				return false
			case !empty:
				writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return false
			}
			return true
		}
	}
	dec := jsontext.NewDecoder(body, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	v := &valueReader{dec: dec}
	if dec.PeekKind() == 0 {
		if _, err := dec.ReadToken(); errors.Is(err, io.EOF) {
			return true // an empty body: the defaults
		} else if err != nil {
			answerBodyError(c, err)
			return false
		}
	}
	err := v.object(visit)
	if err == nil {
		if _, err = dec.ReadToken(); errors.Is(err, io.EOF) {
			return true
		}
		if err == nil || isSyntax(err) {
			err = errTrailing
		}
	}
	answerBodyError(c, err)
	return false
}

// emptyBody reports whether a body holds nothing but white space.
func emptyBody(r io.Reader) (bool, error) {
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
				return false, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
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
	case errors.Is(err, errTooDeep), errors.Is(err, errNotObject), errors.Is(err, errTrailing):
		writeError(c, http.StatusBadRequest, err.Error())
	case isSyntax(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		writeError(c, http.StatusBadRequest, errSyntax.Error())
	default:
		writeError(c, http.StatusBadRequest, "could not read the request body")
	}
}

func isSyntax(err error) bool {
	var se *jsontext.SyntacticError
	return errors.As(err, &se) || errors.Is(err, errSyntax)
}

// valueReader reads JSON values from a decoder.
type valueReader struct {
	dec *jsontext.Decoder
}

// object reads a whole object, calling visit for each field.
func (v *valueReader) object(visit fieldVisitor) error {
	if k := v.dec.PeekKind(); k != '{' {
		if k == 0 {
			_, err := v.dec.ReadToken()
			return err
		}
		if err := v.skip(); err != nil {
			return err
		}
		return errNotObject
	}
	if _, err := v.dec.ReadToken(); err != nil {
		return err
	}
	for v.dec.PeekKind() != '}' {
		t, err := v.dec.ReadToken()
		if err != nil {
			return err
		}
		if err := visit(t.String(), v); err != nil {
			return err
		}
	}
	_, err := v.dec.ReadToken() // '}'
	return err
}

// skip consumes one value, whatever it is, nested at most maxNesting deep
// counting from the top-level object.
func (v *valueReader) skip() error {
	k := v.dec.PeekKind()
	if k != '[' && k != '{' {
		_, err := v.dec.ReadToken()
		return err
	}
	base := v.dec.StackDepth()
	for {
		t, err := v.dec.ReadToken()
		if err != nil {
			return err
		}
		if v.dec.StackDepth() > maxNesting {
			return errTooDeep
		}
		if (t.Kind() == ']' || t.Kind() == '}') && v.dec.StackDepth() == base {
			return nil
		}
	}
}

// scalar reads a value that should be a string, number, true, false or
// null. If it is an array or object, it is skipped and ok is false.
func (v *valueReader) scalar() (t jsontext.Token, ok bool, err error) {
	if k := v.dec.PeekKind(); k == '[' || k == '{' {
		return jsontext.Token{}, false, v.skip()
	}
	t, err = v.dec.ReadToken()
	return t, err == nil, err
}

// numbers reads a value that should be an array of numbers, calling each
// for every element with its index, as long as they are numbers. isArray
// is false if the value is not an array (it is skipped); badElem is the
// index of the first element that is not a number (-1: none), after which
// each is not called.
func (v *valueReader) numbers(each func(i int, n jsontext.Token) error) (isArray bool, badElem int, err error) {
	if v.dec.PeekKind() != '[' {
		return false, -1, v.skip()
	}
	if _, err := v.dec.ReadToken(); err != nil {
		return false, -1, err
	}
	badElem = -1
	for i := 0; ; i++ {
		switch k := v.dec.PeekKind(); k {
		case ']':
			_, err := v.dec.ReadToken()
			return true, badElem, err
		case '0':
			t, err := v.dec.ReadToken()
			if err != nil {
				return true, badElem, err
			}
			if badElem < 0 {
				if err := each(i, t); err != nil {
					return true, badElem, err
				}
			}
		default:
			if badElem < 0 {
				badElem = i
			}
			if err := v.skip(); err != nil {
				return true, badElem, err
			}
		}
	}
}

// asInt converts a JSON number to an int if it is a whole number (5 or
// 5.0). Numbers beyond the int range saturate, so that range checks
// reject them.
func asInt(t jsontext.Token) (int, bool) {
	if t.Kind() != '0' {
		return 0, false
	}
	if i, err := t.Int(); err == nil {
		return int(i), true
	}
	f, err := t.Float()
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, false
	}
	return int(max(min(f, math.MaxInt64/2), math.MinInt64/2)), true
}

// asFloat converts a JSON number to a float64; a number too large for a
// float64 becomes ±Inf, which range checks reject.
func asFloat(t jsontext.Token) (float64, bool) {
	if t.Kind() != '0' {
		return 0, false
	}
	f, err := t.Float()
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// asString is a JSON string's value.
func asString(t jsontext.Token) (string, bool) {
	if t.Kind() != '"' {
		return "", false
	}
	return t.String(), true
}

func asBool(t jsontext.Token) (bool, bool) {
	if k := t.Kind(); k != 't' && k != 'f' {
		return false, false
	}
	return t.Bool(), true
}
