// Package openapi holds the OpenAPI 3.1 document of the license service API (API.md), an
// offline copy of Swagger UI that renders it, and the HTTP handlers the writer mounts for
// both. Tests check the running servers against the document with openapitest.
package openapi

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed openapi.yaml
var spec []byte

//go:embed swaggerui/index.html swaggerui/swagger-initializer.js swaggerui/swagger-ui-bundle.js swaggerui/swagger-ui.css swaggerui/favicon-16x16.png swaggerui/favicon-32x32.png swaggerui/LICENSE swaggerui/NOTICE
var uiFiles embed.FS

// SpecContentType is the media type the document is served with.
const SpecContentType = "application/yaml"

// Paths the writer serves the document and the UI at.
const (
	SpecPath = "/api/openapi.yaml"
	DocsPath = "/api/docs/"
)

// Spec returns a copy of the OpenAPI document (YAML).
func Spec() []byte { return bytes.Clone(spec) }

// UI returns the Swagger UI files (index.html at the root).
func UI() fs.FS {
	sub, err := fs.Sub(uiFiles, "swaggerui")
	if err != nil {
		panic("openapi: embedded swaggerui missing: " + err.Error())
	}
	return sub
}

// Register mounts GET /api/openapi.yaml (the document, application/yaml), GET /api/docs/
// (Swagger UI and its assets, loaded relatively; no CDN) and GET /api/docs (a 301 to
// /api/docs/). It sets no X-Request-Id: the server's middleware does that for every route.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+SpecPath, serveSpec)
	mux.Handle("GET "+strings.TrimSuffix(DocsPath, "/"), http.RedirectHandler(DocsPath, http.StatusMovedPermanently))
	mux.Handle("GET "+DocsPath, docsHandler(UI()))
}

// modTime is fixed at start so conditional requests work against the embedded files.
var modTime = time.Now().UTC().Truncate(time.Second)

func serveSpec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", SpecContentType)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "openapi.yaml", modTime, bytes.NewReader(spec))
}

func docsHandler(ui fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, DocsPath)
		if name == "" {
			name = "index.html"
		}
		if !fs.ValidPath(name) || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(ui, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		switch {
		case name == "LICENSE" || name == "NOTICE":
			ctype = "text/plain; charset=utf-8"
		case ctype == "":
			ctype = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		http.ServeContent(w, r, name, modTime, bytes.NewReader(b))
	})
}
