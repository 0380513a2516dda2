package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spool-run/spool/queue"
)

// TestOpenAPIMatchesRoutes walks the mux's real routes: every route is in the document with
// its method, and every operation in the document is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Fatalf("openapi %q servers %+v", doc.OpenAPI, doc.Servers)
	}

	s := New(Config{Engine: &queue.Engine{}})
	routes := map[string]bool{}
	for _, rt := range s.routes() {
		path := strings.TrimSuffix(rt.path, "{$}") // "/{$}" is the exact path "/"
		if path == "" {
			path = "/"
		}
		key := strings.ToLower(rt.method) + " " + path
		routes[key] = true
		// The route is what the mux really serves for that method and path.
		concrete := regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "x")
		req := httptest.NewRequest(rt.method, concrete, nil)
		if _, pattern := s.mux.Handler(req); pattern != rt.method+" "+rt.path {
			t.Errorf("%s %s is served by pattern %q", rt.method, concrete, pattern)
		}
		op, ok := doc.Paths[path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s %s is missing from openapi.json", rt.method, path)
			continue
		}
		var o struct {
			OperationID string                     `json:"operationId"`
			Responses   map[string]json.RawMessage `json:"responses"`
			Parameters  []struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		}
		if err := json.Unmarshal(op, &o); err != nil || o.OperationID == "" || len(o.Responses) == 0 {
			t.Errorf("%s %s: operation lacks an id or responses", rt.method, path)
		}
		if strings.Contains(path, "{id}") {
			found := false
			for _, p := range o.Parameters {
				found = found || p.Ref == "#/components/parameters/id" || (p.Name == "id" && p.In == "path")
			}
			if !found {
				t.Errorf("%s %s does not declare the {id} path parameter", rt.method, path)
			}
		}
	}
	var extra []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if !routes[method+" "+path] {
				extra = append(extra, method+" "+path)
			}
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("openapi.json documents operations the server does not route: %v", extra)
	}

	// Every $ref resolves.
	refs := regexp.MustCompile(`"\$ref": "#/components/(\w+)/(\w+)"`).FindAllStringSubmatch(string(OpenAPI()), -1)
	var comps map[string]map[string]json.RawMessage
	var whole struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	_ = json.Unmarshal(OpenAPI(), &whole)
	comps = whole.Components
	for _, m := range refs {
		if _, ok := comps[m[1]][m[2]]; !ok {
			t.Errorf("dangling $ref #/components/%s/%s", m[1], m[2])
		}
	}
}
