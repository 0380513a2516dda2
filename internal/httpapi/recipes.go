package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// RecipeInfo describes a recipe in GET /api/v1/recipes.
type RecipeInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version,omitempty"`
	// Defaults are the recipe's run defaults: timeout_sec, max_retries, priority,
	// idempotency_scope, webhook_events, concurrency.
	Defaults    map[string]any  `json:"defaults"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// Enabled is false when the recipe refuses submits (runtime.job.enabled: false).
	Enabled bool `json:"enabled"`
	// File is the recipe file it was loaded from ("" for Go handlers).
	File string `json:"file,omitempty"`
	// Exec and LLM are the kind's block, shown by GET /api/v1/recipes/{name} only.
	Exec any `json:"exec,omitempty"`
	LLM  any `json:"llm,omitempty"`
}

// RecipeError names a recipe file that failed to load.
type RecipeError struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// Catalog is the recipe set the API lists and reloads.
type Catalog interface {
	// Recipes lists the loaded recipes and the files that failed to load.
	Recipes() ([]RecipeInfo, []RecipeError)
	// Reload reads the recipe directory again and installs the result in the engine.
	Reload(ctx context.Context) error
}

// engineCatalog is the catalog of an engine without recipe files: its Go handlers only.
type engineCatalog struct{ e *queue.Engine }

func (engineCatalog) Recipes() ([]RecipeInfo, []RecipeError) { return nil, nil }
func (engineCatalog) Reload(context.Context) error           { return nil }

// recipeInfos merges the catalog's recipes with the Go handlers registered in the engine.
func (s *Server) recipeInfos() ([]RecipeInfo, []RecipeError) {
	infos, errs := s.recipes.Recipes()
	seen := make(map[string]bool, len(infos))
	for _, in := range infos {
		seen[in.Name] = true
	}
	for _, name := range s.engine.RecipeNames() {
		if !seen[name] {
			infos = append(infos, goRecipeInfo(s.engine, name))
		}
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	if errs == nil {
		errs = []RecipeError{}
	}
	return infos, errs
}

// goRecipeInfo describes a recipe registered in the engine as a Go handler.
func goRecipeInfo(e *queue.Engine, name string) RecipeInfo {
	info := RecipeInfo{Name: name, Kind: "go", Enabled: true, Defaults: map[string]any{}}
	if r, ok := e.Recipe(name); ok {
		d := info.Defaults
		if r.TimeoutSec > 0 {
			d["timeout_sec"] = r.TimeoutSec
		}
		if r.MaxRetries != nil {
			d["max_retries"] = *r.MaxRetries
		}
		if r.Priority != nil {
			d["priority"] = r.Priority.String()
		}
		if r.IdempotencyScope != "" {
			d["idempotency_scope"] = r.IdempotencyScope
		}
		if len(r.WebhookEvents) > 0 {
			d["webhook_events"] = r.WebhookEvents
		}
		if r.ConcurrencyMax > 0 {
			d["concurrency"] = r.ConcurrencyMax
		}
	}
	return info
}

// listRecipes is GET /api/v1/recipes.
func (s *Server) listRecipes(w http.ResponseWriter, r *http.Request) {
	infos, errs := s.recipeInfos()
	for i := range infos {
		infos[i].Exec, infos[i].LLM = nil, nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"recipes": infos, "errors": errs})
}

// getRecipe is GET /api/v1/recipes/{name}.
func (s *Server) getRecipe(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	infos, _ := s.recipeInfos()
	for _, in := range infos {
		if in.Name == name {
			writeJSON(w, http.StatusOK, in)
			return
		}
	}
	s.writeProblem(w, r, spool.Errorf(spool.CodeNotFound, "recipe %q not found", name))
}

// reloadRecipes is POST /api/v1/recipes/reload: it needs a token for every workspace.
func (s *Server) reloadRecipes(w http.ResponseWriter, r *http.Request) {
	if err := requireUnscoped(r); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := s.recipes.Reload(r.Context()); err != nil {
		s.writeProblem(w, r, spool.Errorf(spool.CodeInternal, "reloading recipes: %v", err))
		return
	}
	s.listRecipes(w, r)
}
