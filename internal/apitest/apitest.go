// Package apitest holds what end-to-end tests of the HTTP API share: a recorded response
// with helpers to decode its JSON body and read its problem code.
package apitest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Response is one recorded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v or fails the test.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Code is the problem+json code of an error answer ("" when there is none).
func (r Response) Code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return p.Code
}
