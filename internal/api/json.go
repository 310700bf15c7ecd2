package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// maxDepth bounds the nesting of a JSON value turned into msgpack, as the
// protocol bounds raw values.
const maxDepth = 32

// errorBody is every error answer.
type errorBody struct {
	Code     int    `json:"code"`
	Error    string `json:"error"`
	GameCode int    `json:"gameCode,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// A value JSON cannot carry (a NaN in a room's metadata).
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{Code: status, Error: "the answer cannot be encoded as JSON: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, errorBody{Code: e.Status, Error: e.Message, GameCode: e.GameCode})
}

// decode reads r's body as one JSON object into v, refusing unknown
// fields. An empty body is refused when required, else left as v is. It
// answers the error itself and reports whether v is good.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, required bool) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeError(w, Errorf(http.StatusUnsupportedMediaType, "content type %q: send application/json (with curl: -H 'Content-Type: application/json')", ct))
			return false
		}
	}
	if r.ContentLength > a.cfg.MaxBodyBytes {
		writeError(w, Errorf(http.StatusRequestEntityTooLarge, "the body is over %d bytes", a.cfg.MaxBodyBytes))
		return false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, Errorf(http.StatusRequestEntityTooLarge, "the body is over %d bytes", a.cfg.MaxBodyBytes))
		} else {
			writeError(w, Errorf(http.StatusBadRequest, "reading the body: %v", err))
		}
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if required {
			writeError(w, Errorf(http.StatusBadRequest, "a JSON object body is required"))
			return false
		}
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, Errorf(http.StatusBadRequest, "%s", describeJSONError(err)))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, Errorf(http.StatusBadRequest, "malformed JSON: data after the object"))
		return false
	}
	return true
}

// describeJSONError turns a decoding error into a message for the caller.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of the body"
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("the body must be a JSON object, not %s", jsonKind(te.Value))
		}
		return fmt.Sprintf("field %s: want %s, not %s", te.Field, goToJSON(te.Type), jsonKind(te.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number"):
		return "a number"
	case v == "string":
		return "a string"
	case v == "bool":
		return "a boolean"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	}
	return v
}

func goToJSON(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(goToJSON(t.Elem()), "a "), "an ") + "s"
	}
	return "an object"
}

// rawJSON keeps a field's JSON text and whether it was present (null
// included), so an absent field and an explicit null differ.
type rawJSON struct {
	set bool
	raw []byte
}

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	r.set = true
	r.raw = append([]byte(nil), b...)
	return nil
}

func (r rawJSON) null() bool { return string(r.raw) == "null" }

func (r rawJSON) first() byte {
	if len(r.raw) == 0 {
		return 0
	}
	return r.raw[0]
}

// toMsgpack encodes one JSON value as msgpack: integers in their smallest
// encoding (signed when negative), other numbers as float64, objects as
// maps with sorted keys.
func toMsgpack(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New(describeJSONError(err))
	}
	v, err := fromJSON(v, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fromJSON(v any, depth int) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u, nil
			}
			return nil, fmt.Errorf("integer %s out of the 64-bit range", s)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s out of range", s)
		}
		return f, nil
	case map[string]any:
		if depth >= maxDepth {
			return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
		}
		for k, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case []any:
		if depth >= maxDepth {
			return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
		}
		for i, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	}
	return v, nil // string, bool, nil
}

// oneMsgpackValue checks that b is exactly one msgpack value.
func oneMsgpackValue(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty: want one msgpack value")
	}
	rd := bytes.NewReader(b)
	dec := msgpack.NewDecoder(rd)
	if err := dec.Skip(); err != nil {
		return errors.New("not a valid msgpack value")
	}
	if rd.Len() != 0 {
		return errors.New("more than one msgpack value")
	}
	return nil
}

// parseType reads a game message type: a JSON integer or a string holding
// a decimal or 0x-prefixed hexadecimal one, from 0x1000 to 0xFFFF.
func parseType(r rawJSON) (uint16, error) {
	if !r.set || r.null() {
		return 0, errors.New("required: a game message type, 0x1000 to 0xFFFF")
	}
	var n uint64
	var err error
	switch r.first() {
	case '"':
		var s string
		if err = json.Unmarshal(r.raw, &s); err == nil {
			if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
				n, err = strconv.ParseUint(h, 16, 64)
			} else {
				n, err = strconv.ParseUint(s, 10, 64)
			}
		}
	default:
		n, err = strconv.ParseUint(string(r.raw), 10, 64)
	}
	if err != nil {
		return 0, errors.New(`want an integer or a string such as "0x1101"`)
	}
	if n < 0x1000 || n > 0xFFFF {
		return 0, fmt.Errorf("%d (0x%x) is not a game type: want 0x1000 to 0xFFFF", n, n)
	}
	return uint16(n), nil
}
