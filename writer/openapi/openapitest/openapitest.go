// Package openapitest checks HTTP answers against the writer's OpenAPI document. Only tests
// import it, so the validator and its dependencies stay out of the production binaries.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/licensing/licensing/writer/openapi"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// Validator checks HTTP responses against the embedded OpenAPI document: the path and method
// must be documented, the status must be listed for that operation, the Content-Type must be
// one the status documents, the body must match its JSON schema (formats such as uuid,
// date-time and email are asserted) and required response headers (X-Request-Id everywhere,
// Retry-After on 429, Cache-Control on the status answer) must be present and well-formed.
// It is safe for concurrent use.
type Validator struct {
	mu sync.Mutex
	v  validator.Validator
}

// NewValidator builds a Validator from the embedded document.
func NewValidator() (*Validator, error) {
	doc, err := libopenapi.NewDocument(openapi.Spec())
	if err != nil {
		return nil, fmt.Errorf("openapi: parse document: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi: build validator: %w", errors.Join(errs...))
	}
	return &Validator{v: v}, nil
}

// ValidateSpec checks the embedded document against the OpenAPI 3.1 meta-schema.
func ValidateSpec() error { return validateSpec(openapi.Spec()) }

func validateSpec(b []byte) error {
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return fmt.Errorf("openapi: parse document: %w", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		return fmt.Errorf("openapi: document version is %q, want 3.1.0", v)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		return fmt.Errorf("openapi: build model: %w", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return fmt.Errorf("openapi: build validator: %w", errors.Join(errs...))
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return describe("openapi document is invalid", verrs)
	}
	return nil
}

// ValidateResponse returns nil when a response with this status, header and body is what the
// document promises for req (only its method, URL path and query are used), and otherwise an
// error listing every mismatch. A request to an undocumented path or method is an error.
func (v *Validator) ValidateResponse(req *http.Request, status int, header http.Header, body []byte) error {
	if req == nil || req.URL == nil {
		return errors.New("openapi: ValidateResponse needs a request with a URL")
	}
	if header == nil {
		header = http.Header{}
	}
	// 204 and 304 never carry a body (RFC 9110); the schema check would not notice one.
	if (status == http.StatusNoContent || status == http.StatusNotModified) && len(body) > 0 {
		return fmt.Errorf("%s %s: status %d must have no body, got %d bytes", req.Method, req.URL.Path, status, len(body))
	}
	resp := &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:        header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
	v.mu.Lock()
	ok, errs := v.v.ValidateHttpResponse(req, resp)
	v.mu.Unlock()
	if ok && len(errs) == 0 {
		return nil
	}
	return describe(fmt.Sprintf("%s %s -> %d does not match the OpenAPI document", req.Method, req.URL.Path, status), errs)
}

// ValidateRequest returns nil when req (method, path, query, headers, credential presence
// and body) is what the document accepts, and otherwise an error listing every mismatch. The
// body is read and restored.
func (v *Validator) ValidateRequest(req *http.Request) error {
	if req == nil || req.URL == nil {
		return errors.New("openapi: ValidateRequest needs a request with a URL")
	}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return fmt.Errorf("openapi: read request body: %w", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		defer func() { req.Body = io.NopCloser(bytes.NewReader(b)) }()
	}
	v.mu.Lock()
	ok, errs := v.v.ValidateHttpRequestSync(req)
	v.mu.Unlock()
	if ok && len(errs) == 0 {
		return nil
	}
	return describe(fmt.Sprintf("%s %s does not match the OpenAPI document", req.Method, req.URL.Path), errs)
}

// ValidateHTTPResponse is ValidateResponse for a complete *http.Response (its Request must be
// set); the body is read and restored.
func (v *Validator) ValidateHTTPResponse(resp *http.Response) error {
	if resp == nil || resp.Request == nil {
		return errors.New("openapi: ValidateHTTPResponse needs a response with its Request")
	}
	var body []byte
	if resp.Body != nil {
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("openapi: read response body: %w", err)
		}
		body = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return v.ValidateResponse(resp.Request, resp.StatusCode, resp.Header, body)
}

// describe flattens validation errors into one readable error.
func describe(what string, errs []*verrors.ValidationError) error {
	if len(errs) == 0 {
		return errors.New(what)
	}
	var b strings.Builder
	b.WriteString(what)
	b.WriteString(":")
	for _, e := range errs {
		b.WriteString("\n  - ")
		b.WriteString(e.Message)
		if e.Reason != "" && e.Reason != e.Message {
			b.WriteString(": ")
			b.WriteString(e.Reason)
		}
		for _, s := range e.SchemaValidationErrors {
			b.WriteString("\n      ")
			loc := s.FieldPath
			if loc == "" {
				loc = strings.Join(s.InstancePath, "/")
			}
			if loc != "" {
				b.WriteString(loc)
				b.WriteString(": ")
			}
			b.WriteString(s.Reason)
		}
		if e.SpecLine > 0 {
			fmt.Fprintf(&b, " (openapi.yaml line %d)", e.SpecLine)
		}
	}
	return errors.New(b.String())
}
