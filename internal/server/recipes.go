package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/spool-run/spool/internal/httpapi"
	"github.com/spool-run/spool/internal/recipe"
	"github.com/spool-run/spool/queue"
)

// recipeCatalog is the server's recipes: the recipe directory (when there is one) plus the
// Go recipes given in Config. It installs them in the engine and serves the API's listing.
type recipeCatalog struct {
	engine    *queue.Engine
	src       *recipe.Source
	goRecipes []*queue.Recipe
	log       *slog.Logger
	mu        sync.Mutex // serializes reloads with installs
}

// install gives the engine the current recipe files and the Go recipes.
func (c *recipeCatalog) install() {
	var rs []*queue.Recipe
	if c.src != nil {
		rs = c.src.Set().Recipes()
	}
	c.engine.SetRecipes(append(rs, c.goRecipes...))
}

// Reload reads the recipe directory again and installs the result. Broken files are
// reported in the listing and the log; the others still load.
func (c *recipeCatalog) Reload(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != nil {
		set := c.src.Reload()
		c.log.Info("recipes reloaded", "dir", c.src.Dir, "count", len(set.List()), "errors", len(set.Errors()))
		for _, fe := range set.Errors() {
			c.log.Warn("recipe not loaded", "file", fe.File, "err", fe.Error())
		}
	}
	c.install()
	return nil
}

// Recipes lists the recipe files for the API (Go recipes are added by the API itself).
func (c *recipeCatalog) Recipes() ([]httpapi.RecipeInfo, []httpapi.RecipeError) {
	if c.src == nil {
		return nil, nil
	}
	set := c.src.Set()
	var infos []httpapi.RecipeInfo
	for _, r := range set.List() {
		infos = append(infos, recipeInfo(r))
	}
	var errs []httpapi.RecipeError
	for _, fe := range set.Errors() {
		errs = append(errs, httpapi.RecipeError{File: fe.File, Error: fe.Error()})
	}
	return infos, errs
}

func recipeInfo(r *recipe.Recipe) httpapi.RecipeInfo {
	j := r.Runtime.Job
	d := map[string]any{}
	timeout := j.TimeoutSec
	if timeout == 0 {
		timeout = r.Runtime.Background.TimeoutSec
	}
	if timeout > 0 {
		d["timeout_sec"] = timeout
	}
	if j.MaxRetries != nil {
		d["max_retries"] = *j.MaxRetries
	}
	if j.Priority != "" {
		d["priority"] = j.Priority
	}
	if j.IdempotencyScope != "" {
		d["idempotency_scope"] = j.IdempotencyScope
	}
	if len(j.Events) > 0 {
		d["webhook_events"] = j.Events
	}
	if j.WebhookURL != "" {
		d["webhook_url"] = j.WebhookURL
	}
	if m := r.Runtime.Concurrency.Max; m > 0 {
		d["concurrency"] = m
	}
	info := httpapi.RecipeInfo{
		Name: r.Name, Kind: r.Kind, Description: r.Description, Version: r.Version,
		Defaults: d, Enabled: r.Enabled(), File: r.File,
	}
	if len(r.InputSchema) > 0 {
		info.InputSchema = json.RawMessage(r.InputSchema)
	}
	if r.Exec != nil {
		info.Exec = r.Exec
	}
	if r.LLM != nil {
		info.LLM = r.LLM
	}
	return info
}
