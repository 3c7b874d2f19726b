package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// MaxBodyBytes is the largest JSON body the APIs accept.
const MaxBodyBytes = 64000

// DecodeError is a request body that could not be decoded. Status is 415 for
// a wrong content type, 413 for a body over the limit and 400 otherwise.
type DecodeError struct {
	Status int
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

// DecodeJSON reads exactly one JSON object into v: the content type must be
// application/json, the body at most MaxBodyBytes, unknown fields and
// trailing data are refused. Field names match case-insensitively.
func DecodeJSON(c echo.Context, v any) error {
	if !isJSONContentType(c.Request().Header.Get(echo.HeaderContentType)) {
		return &DecodeError{Status: http.StatusUnsupportedMediaType, Msg: "content type must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &DecodeError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
		}
		return &DecodeError{Status: http.StatusBadRequest, Msg: "reading body failed"}
	}
	return UnmarshalStrict(body, v)
}

// isJSONContentType reports whether ct is the media type application/json,
// with or without parameters; a charset, if given, must be UTF-8. The type
// is parsed, not prefix-matched: application/jsonx is another type.
func isJSONContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	// JSON is UTF-8 (RFC 8259); a body declared otherwise would be misread.
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// UnmarshalStrict decodes exactly one JSON object from body into v, refusing
// unknown fields and trailing data.
func UnmarshalStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &DecodeError{Status: http.StatusBadRequest, Msg: "body is empty"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &DecodeError{Status: http.StatusBadRequest, Msg: "malformed JSON: " + describeJSONError(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &DecodeError{Status: http.StatusBadRequest, Msg: "body must hold exactly one JSON object"}
	}
	return nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of body"
	}
	return "not a JSON object"
}
