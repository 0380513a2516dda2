package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := Handler(Options{Version: "v1.2.3", Database: "sqlite"})
	tests := []struct {
		path   string
		status int
		ctype  string
	}{
		{"/", 200, "text/html; charset=utf-8"},
		{"/runs", 200, "text/html; charset=utf-8"},
		{"/runs/", 200, "text/html; charset=utf-8"},
		{"/runs/run_01JD8X", 200, "text/html; charset=utf-8"},
		{"/recipes", 200, "text/html; charset=utf-8"},
		{"/recipes/echo", 200, "text/html; charset=utf-8"},
		{"/nodes", 200, "text/html; charset=utf-8"},
		{"/schedules", 200, "text/html; charset=utf-8"},
		{"/assets/app.css", 200, "text/css; charset=utf-8"},
		{"/assets/js/app.js", 200, "text/javascript; charset=utf-8"},
		{"/assets/js/pages/run.js", 200, "text/javascript; charset=utf-8"},
		{"/assets/favicon.svg", 200, "image/svg+xml"},
		{"/favicon.ico", 200, "image/svg+xml"},
		{"/nope", 404, "text/html; charset=utf-8"},
		{"/runs/a/b", 404, "text/html; charset=utf-8"},
		{"/nodes/x", 404, "text/html; charset=utf-8"},
		{"/assets/missing.js", 404, "text/html; charset=utf-8"},
		{"/assets/", 404, "text/html; charset=utf-8"},
	}
	for _, tt := range tests {
		res := get(t, h, "GET", tt.path, nil)
		if res.StatusCode != tt.status {
			t.Errorf("GET %s: status %d, want %d", tt.path, res.StatusCode, tt.status)
		}
		if got := res.Header.Get("Content-Type"); got != tt.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.ctype)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := Handler(Options{})
	for _, path := range []string{"/", "/runs/x", "/assets/js/app.js", "/nope"} {
		res := get(t, h, "GET", path, nil)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows unsafe sources: %q", path, csp)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
		if got := res.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q", path, got)
		}
		if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q", path, got)
		}
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	h := Handler(Options{})
	res := get(t, h, "POST", "/runs", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /runs: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, "HEAD", "/", nil)
	if res.StatusCode != 200 || body(t, res) != "" {
		t.Errorf("HEAD /: status %d", res.StatusCode)
	}
}

func TestETagRevalidation(t *testing.T) {
	t.Parallel()
	h := Handler(Options{})
	res := get(t, h, "GET", "/assets/js/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	res = get(t, h, "GET", "/assets/js/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: status %d, want 304", res.StatusCode)
	}
	res = get(t, h, "GET", "/assets/js/app.js", http.Header{"If-None-Match": {`"other"`}})
	if res.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: status %d, want 200", res.StatusCode)
	}
}

func TestIndexOptions(t *testing.T) {
	t.Parallel()
	page := body(t, get(t, Handler(Options{AuthRequired: true, Version: `v1"><script>x</script>`, Database: "postgres"}), "GET", "/", nil))
	if !strings.Contains(page, `<meta name="spool-auth" content="required">`) {
		t.Error("index does not say that a token is required")
	}
	if strings.Contains(page, "<script>x</script>") {
		t.Error("the version string is not escaped")
	}
	if !strings.Contains(page, "postgres") {
		t.Error("the database name is missing")
	}
	page = body(t, get(t, Handler(Options{}), "GET", "/runs", nil))
	if !strings.Contains(page, `<meta name="spool-auth" content="optional">`) {
		t.Error("index without tokens does not say optional")
	}
}

// TestNoInlineScript checks what the CSP enforces in the browser: no inline script or
// inline event handler in any HTML the package serves.
func TestNoInlineScript(t *testing.T) {
	t.Parallel()
	pages := []string{body(t, get(t, Handler(Options{}), "GET", "/", nil)), notFoundPage}
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=`)
	for _, p := range pages {
		for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(p, -1) {
			if !strings.Contains(tag, `src="/assets/`) {
				t.Errorf("script tag without a same-origin src: %s", tag)
			}
		}
		if m := inline.FindString(p); m != "" {
			t.Errorf("inline script or handler: %q", m)
		}
	}
}

// TestAssetsAvoidHTMLSinks keeps the scripts off the APIs that parse strings as HTML or
// code, so data can only ever become text.
func TestAssetsAvoidHTMLSinks(t *testing.T) {
	t.Parallel()
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|DOMParser`)
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(assetFS, p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := sinks.FindString(line); m != "" {
				t.Errorf("%s:%d uses %s", p, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIsPage(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"/": true, "/runs": true, "/runs/": true, "/runs/x": true, "/runs/x/": true, "/recipes/echo": true,
		"/nodes": true, "/schedules": true, "/runs//": false, "/nodes/x": false, "/schedules/x": false,
		"/api/v1/runs": false, "/assets": false, "": false, "/runs/x/y": false,
	} {
		if got := isPage(p); got != want {
			t.Errorf("isPage(%q) = %v, want %v", p, got, want)
		}
	}
}
