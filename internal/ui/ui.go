// Package ui serves Spool's web dashboard: a single-page application of plain HTML, CSS and
// JavaScript modules embedded in the binary, which talks to the HTTP API under /api/v1 with
// the same bearer tokens as every other client.
//
// Mount [Handler] at "/" for GET and HEAD requests outside /api/. It answers:
//
//   - the page routes ("/", "/runs", "/runs/{id}", "/recipes", "/recipes/{name}", "/nodes",
//     "/schedules") with the application's HTML shell;
//   - "/assets/..." with the embedded scripts, styles and images;
//   - "/favicon.ico" with the icon;
//   - anything else with 404.
//
// Every answer carries a Content-Security-Policy that allows only this origin's scripts
// (no inline script, no eval), X-Content-Type-Options: nosniff, frame-ancestors 'none' and
// Referrer-Policy: no-referrer.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assetFS embed.FS

//go:embed index.html
var indexSource string

// Options configures the dashboard.
type Options struct {
	// AuthRequired tells the dashboard that the API wants a token, so that it asks for one
	// before its first call instead of after a 401.
	AuthRequired bool
	// Version is the server's version, shown in the page footer.
	Version string
	// Database names the storage driver ("sqlite", "postgres"), shown in the footer.
	Database string
}

// ContentSecurityPolicy is the policy set on every answer of the dashboard. Scripts and
// styles come only from this origin; data is fetched only from this origin; nothing may
// frame the dashboard.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// pageRoutes are the first path segments the application routes in the browser.
var pageRoutes = map[string]bool{"": true, "runs": true, "recipes": true, "nodes": true, "schedules": true}

// Handler returns the dashboard's http.Handler.
func Handler(opts Options) http.Handler {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic("ui: embedded assets missing: " + err.Error())
	}
	h := &handler{files: map[string]*asset{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		h.files["/assets/"+p] = newAsset(p, b)
		return nil
	})
	if err != nil {
		panic("ui: reading embedded assets: " + err.Error())
	}
	h.index = newAsset("index.html", renderIndex(opts))
	h.favicon = h.files["/assets/favicon.svg"]
	return h
}

type handler struct {
	files   map[string]*asset
	index   *asset
	favicon *asset
}

// asset is one file the dashboard serves, with its strong ETag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(name string, b []byte) *asset {
	sum := sha256.Sum256(b)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js", ".mjs":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/assets/"):
		if a, ok := h.files[p]; ok {
			serveAsset(w, r, a)
			return
		}
	case p == "/favicon.ico" && h.favicon != nil:
		serveAsset(w, r, h.favicon)
		return
	case isPage(p):
		serveAsset(w, r, h.index)
		return
	}
	notFound(w)
}

// isPage reports whether p is a route of the application: a known first segment followed
// by at most one more (a run id or a recipe name).
func isPage(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	if !pageRoutes[parts[0]] {
		return false
	}
	switch len(parts) {
	case 1:
		return true
	case 2:
		return (parts[0] == "runs" || parts[0] == "recipes") && parts[1] != ""
	}
	return false
}

// serveAsset writes a, or 304 when the request's If-None-Match names its ETag. Assets are revalidated
// on every load (no-cache): their names carry no hash, and a revalidation is one tiny
// request on loopback or a LAN.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag) // http.ServeContent answers If-None-Match with 304
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

const notFoundPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Spool</title>
<link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="page narrow"><h1>Page not found</h1>
<p>There is no page at this address. <a href="/">Go to the overview</a>.</p></main></body></html>
`

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(notFoundPage))
}

var indexTemplate = template.Must(template.New("index").Parse(indexSource))

// renderIndex fills the HTML shell with the options, as meta tags the application reads
// (the CSP forbids inline script, so there is no inline configuration object).
func renderIndex(opts Options) []byte {
	var buf bytes.Buffer
	auth := "optional"
	if opts.AuthRequired {
		auth = "required"
	}
	err := indexTemplate.Execute(&buf, map[string]string{
		"Auth": auth, "Version": opts.Version, "Database": opts.Database,
	})
	if err != nil {
		panic("ui: rendering index.html: " + err.Error())
	}
	return buf.Bytes()
}
