package api

import (
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
)

// MaxHeadBytes bounds the request head (request line and headers): API.md's 431. The
// net/http server's own limit (http.Server.MaxHeaderBytes) is set well above it, so this
// check, which answers problem+json, is the one clients meet.
const MaxHeadBytes = 16 << 10

// headersRead are the request headers the writer reads; each must be valid text.
var headersRead = []string{"Authorization", "Idempotency-Key", "Content-Type", "X-Forwarded-For"}

// checkRequest enforces API.md's strict-input rules on what every request carries before
// it is routed: the head's size, one Authorization header, valid text (UTF-8, no control
// character) in the path, every query value and every header the writer reads, and a JSON
// media type for every body.
func checkRequest(r *http.Request) error {
	size := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > MaxHeadBytes {
		return &problem.Error{Kind: problem.InvalidRequest, Reason: problem.HeadTooLarge,
			Detail: "request head: larger than " + strconv.Itoa(MaxHeadBytes/1024) + " KiB"}
	}
	if len(r.Header.Values("Authorization")) > 1 {
		return problem.Invalid("Authorization", "must be given once")
	}
	for _, h := range headersRead {
		for _, v := range r.Header.Values(h) {
			if err := license.CheckText(v); err != nil {
				return problem.Invalid(h, "%v", err)
			}
		}
	}
	if err := license.CheckText(r.URL.Path); err != nil {
		return problem.Invalid("path", "%v", err)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return problem.Invalid("query", "malformed query string")
	}
	for k, vs := range q {
		if err := license.CheckText(k); err != nil {
			return problem.Invalid("query", "%v", err)
		}
		for _, v := range vs {
			if err := license.CheckText(v); err != nil {
				return problem.Invalid(k, "%v", err)
			}
		}
	}
	if r.ContentLength != 0 && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := jsonMediaType(r.Header.Get("Content-Type")); err != nil {
			return err
		}
	}
	return nil
}

// jsonMediaType accepts application/json, with at most a charset=utf-8 parameter.
func jsonMediaType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		ok := true
		for k, v := range params {
			ok = ok && k == "charset" && strings.EqualFold(v, "utf-8")
		}
		if ok {
			return nil
		}
	}
	return problem.New(problem.UnsupportedMediaType, "a request body must be sent as Content-Type: application/json")
}

// decodeJSON strictly decodes body into dst (API.md): malformed JSON, invalid UTF-8,
// unknown fields (names match exactly, case included), fields given twice, wrong types and
// trailing data are invalid_request naming the field; so is any string with a control
// character.
func decodeJSON(body []byte, dst any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return problem.Invalid("body", "a JSON object is required")
	}
	if err := jsonv2.Unmarshal(body, dst, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeErr(err)
	}
	return checkStrings(reflect.ValueOf(dst), "")
}

func decodeErr(err error) error {
	var syn *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	switch {
	case asErr(err, &syn):
		field := fieldName(syn.JSONPointer)
		switch {
		case syn.Err == jsontext.ErrDuplicateName:
			return problem.Invalid(fieldName(syn.JSONPointer), "given twice")
		case strings.Contains(syn.Error(), "invalid UTF-8"):
			return problem.Invalid(field, "must be valid UTF-8")
		}
		return problem.Invalid("body", "malformed JSON at offset %d", syn.ByteOffset)
	case asErr(err, &sem):
		field := fieldName(sem.JSONPointer)
		switch {
		case sem.Err == jsonv2.ErrUnknownName:
			return problem.Invalid(field, "unknown field")
		case sem.GoType != nil:
			return problem.Invalid(field, "must be %s", jsonType(sem.GoType.Kind()))
		}
		return problem.Invalid(field, "invalid value")
	}
	return problem.Invalid("body", "invalid JSON")
}

func asErr[T error](err error, target *T) bool {
	for err != nil {
		if t, ok := err.(T); ok {
			*target = t
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// fieldName renders a JSON pointer as the field path clients see ("licenses[0].product").
func fieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "an integer"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return "of another type"
}

// checkStrings walks a decoded value and refuses any string with a control character.
func checkStrings(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkStrings(v.Elem(), path)
		}
	case reflect.String:
		if err := license.CheckText(v.String()); err != nil {
			if path == "" {
				path = "body"
			}
			return problem.Invalid(path, "%v", err)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if err := checkStrings(v.Field(i), name); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkStrings(v.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if err := checkStrings(k, path); err != nil {
				return err
			}
			if err := checkStrings(v.MapIndex(k), path+"."+k.String()); err != nil {
				return err
			}
		}
	}
	return nil
}
