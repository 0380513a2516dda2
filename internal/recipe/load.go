package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/executor/execx"
	"github.com/spool-run/spool/internal/executor/llm"
	"github.com/spool-run/spool/internal/schedule"
	"github.com/spool-run/spool/queue"
)

// maxFileSize bounds a recipe file.
const maxFileSize = 1 << 20

// Limits of recipe values.
const (
	maxTimeoutSec = 30 * 24 * 3600
	maxRetries    = 100
	maxGraceSec   = 3600
)

// namePattern is what a recipe name may look like: it is also the default agent name and a
// folder name.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// WebhookEvents are the values runtime.job.events accepts.
var WebhookEvents = []string{"completed", "succeeded", "failed", "cancelled", "timeout"}

// loadFile reads and validates one recipe file. name is the name its path gives it (the
// folder of a TEMPLATE.yaml, else the file's name without .yaml).
func (l *Loader) loadFile(path, name string) (*Recipe, *FileError) {
	fail := func(ps ...Problem) (*Recipe, *FileError) {
		return nil, &FileError{File: path, Recipe: name, Problems: ps}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(Problem{Reason: err.Error()})
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fail(Problem{Reason: err.Error()})
	}
	if len(data) > maxFileSize {
		return fail(Problem{Reason: fmt.Sprintf("file is larger than %d bytes", maxFileSize)})
	}

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(Problem{Reason: "file is empty"})
		}
		return fail(yamlProblem(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fail(Problem{Line: extra.Line, Reason: "more than one YAML document; a recipe file holds one"})
	}
	root := doc.Content[0]

	r := &Recipe{File: path, Dir: filepath.Dir(path)}
	d := &decoder{lookup: l.lookupEnv(), lines: map[string]int{}}
	d.decode(root, reflect.ValueOf(r).Elem(), "")
	if len(d.problems) > 0 {
		return fail(d.problems...)
	}
	if r.Name == "" {
		r.Name = name
	}
	c := &checker{lines: d.lines}
	c.check(r, name)
	if len(c.problems) == 0 {
		c.build(r, l)
	}
	if len(c.problems) > 0 {
		return fail(c.problems...)
	}
	return r, nil
}

// yamlProblem turns a yaml.v3 syntax error ("yaml: line 3: ...") into a Problem.
func yamlProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		_, rest, _ := strings.Cut(msg, ":")
		return Problem{Line: line, Reason: "invalid YAML: " + strings.TrimSpace(rest)}
	}
	return Problem{Reason: "invalid YAML: " + msg}
}

// checker validates a decoded recipe, naming each problem's key path and line.
type checker struct {
	lines    map[string]int
	problems []Problem
}

func (c *checker) addf(path, format string, args ...any) {
	line := c.lines[path]
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = c.lines[p]
	}
	c.problems = append(c.problems, Problem{Line: line, Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (c *checker) check(r *Recipe, name string) {
	switch {
	case !namePattern.MatchString(r.Name):
		c.addf("name", "%q is not a valid recipe name (letters, digits, _ . -; at most 100)", r.Name)
	case r.Name != name:
		c.addf("name", "%q does not match the name its file gives it (%q); rename one", r.Name, name)
	}
	switch r.Kind {
	case "":
		c.addf("kind", "required (exec or llm)")
	case KindExec:
		if r.LLM != nil {
			c.addf("llm", "not allowed with kind exec")
		}
		if r.Exec == nil {
			c.addf("exec", "required with kind exec")
		} else {
			c.checkExec(r)
		}
	case KindLLM:
		if r.Exec != nil {
			c.addf("exec", "not allowed with kind llm")
		}
		if r.LLM == nil {
			c.addf("llm", "required with kind llm")
		} else {
			c.checkLLM(r.LLM)
		}
	default:
		c.addf("kind", "unknown kind %q (want exec or llm)", r.Kind)
	}
	c.checkRuntime(&r.Runtime)
}

func (c *checker) checkExec(r *Recipe) {
	e := r.Exec
	if len(e.Command) == 0 {
		c.addf("exec.command", `required: the argv, such as ["python3", "main.py"]`)
	}
	for i, a := range e.Command {
		if i == 0 && strings.TrimSpace(a) == "" {
			c.addf("exec.command[0]", "the program must not be empty")
		}
		if strings.ContainsRune(a, 0) {
			c.addf(fmt.Sprintf("exec.command[%d]", i), "contains a NUL byte")
		}
	}
	dir := r.Dir
	if e.Dir != "" {
		dir = e.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(r.Dir, dir)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			c.addf("exec.dir", "%s is not a directory", dir)
		}
	}
	if len(e.Command) > 0 {
		prog := e.Command[0]
		if strings.ContainsRune(prog, '/') && !filepath.IsAbs(prog) {
			switch st, err := os.Stat(filepath.Join(dir, prog)); {
			case err != nil:
				c.addf("exec.command[0]", "%s not found in %s", prog, dir)
			case st.IsDir() || st.Mode()&0o111 == 0:
				c.addf("exec.command[0]", "%s is not executable (chmod +x it, or run it with its interpreter: [sh, %s])", prog, prog)
			}
		}
	}
	for k := range e.Env {
		if !validEnvName(k) {
			c.addf("exec.env."+k, "not a valid variable name")
		}
	}
	if e.GraceSec != nil && (*e.GraceSec < 0 || *e.GraceSec > maxGraceSec) {
		c.addf("exec.grace_sec", "must be between 0 and %d, got %d", maxGraceSec, *e.GraceSec)
	}
}

func (c *checker) checkLLM(s *LLMSpec) {
	if strings.TrimSpace(s.Model) == "" {
		c.addf("llm.model", "required (for example gpt-4o-mini, or ${OPENAI_MODEL:-gpt-4o-mini})")
	}
	if s.BaseURL != "" {
		if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.addf("llm.base_url", "%q is not an http(s) URL", s.BaseURL)
		}
	}
	if s.APIKeyEnv != "" && !validEnvName(s.APIKeyEnv) {
		c.addf("llm.api_key_env", "%q is not a variable name (it names the variable that holds the key, not the key)", s.APIKeyEnv)
	}
	if s.Prompt != "" {
		if _, err := llm.ParsePrompt(s.Prompt); err != nil {
			c.addf("llm.prompt", "%v", strings.TrimPrefix(err.Error(), "prompt: "))
		}
	}
	if s.Temperature != nil && (*s.Temperature < 0 || *s.Temperature > 2) {
		c.addf("llm.temperature", "must be between 0 and 2, got %v", *s.Temperature)
	}
	if s.MaxTokens < 0 {
		c.addf("llm.max_tokens", "must not be negative")
	}
}

func (c *checker) checkRuntime(rt *Runtime) {
	j := &rt.Job
	if j.TimeoutSec < 0 || j.TimeoutSec > maxTimeoutSec {
		c.addf("runtime.job.timeout_sec", "must be between 0 and %d (30 days), got %d", maxTimeoutSec, j.TimeoutSec)
	}
	if j.MaxRetries != nil && (*j.MaxRetries < 0 || *j.MaxRetries > maxRetries) {
		c.addf("runtime.job.max_retries", "must be between 0 and %d, got %d", maxRetries, *j.MaxRetries)
	}
	c.checkPriority("runtime.job.priority", j.Priority)
	if j.WebhookURL != "" {
		if u, err := url.Parse(j.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.addf("runtime.job.webhook_url", "%q is not an http(s) URL", j.WebhookURL)
		}
	}
	switch j.IdempotencyScope {
	case "", spool.ScopeGlobal, spool.ScopeSession, spool.ScopeNone:
	default:
		c.addf("runtime.job.idempotency_scope", "unknown scope %q (want global, session or none)", j.IdempotencyScope)
	}
	for i, ev := range j.Events {
		if !contains(WebhookEvents, ev) {
			c.addf(fmt.Sprintf("runtime.job.events[%d]", i), "unknown event %q (want one of %s)", ev, strings.Join(WebhookEvents, ", "))
		}
	}
	if t := rt.Background.TimeoutSec; t < 0 || t > maxTimeoutSec {
		c.addf("runtime.background.timeout_sec", "must be between 0 and %d (30 days), got %d", maxTimeoutSec, t)
	}
	if rt.Concurrency.Max < 0 {
		c.addf("runtime.concurrency.max", "must not be negative")
	}
	if r := rt.Rate; r != nil {
		if r.Limit <= 0 {
			c.addf("runtime.rate.limit", "must be greater than 0")
		}
		if r.Per == "" {
			c.addf("runtime.rate.per", `required: a duration such as "1m"`)
		} else if d, err := time.ParseDuration(r.Per); err != nil || d <= 0 {
			c.addf("runtime.rate.per", "%q is not a positive duration (such as 1s, 1m, 1h)", r.Per)
		}
		if r.Burst < 0 {
			c.addf("runtime.rate.burst", "must not be negative")
		}
	}
	names := map[string]bool{}
	for i, s := range rt.Schedules {
		p := fmt.Sprintf("runtime.schedules[%d]", i)
		switch {
		case s.Name == "":
			c.addf(p+".name", "required")
		case names[s.Name]:
			c.addf(p+".name", "duplicate schedule name %q", s.Name)
		}
		names[s.Name] = true
		switch {
		case s.Cron == "" && s.Every == "":
			c.addf(p, "needs cron or every")
		case s.Cron != "" && s.Every != "":
			c.addf(p, "give cron or every, not both")
		case s.Cron != "":
			// The zone is checked on its own below; here only the expression.
			if _, err := schedule.ParseCron(s.Cron, ""); err != nil {
				c.addf(p+".cron", "%v", strings.TrimPrefix(err.Error(), "cron: "))
			}
		default:
			if d, err := time.ParseDuration(s.Every); err != nil || d < schedule.MinInterval {
				c.addf(p+".every", "%q is not a duration of at least 1s", s.Every)
			}
		}
		if s.Timezone != "" {
			if _, err := schedule.LoadLocation(s.Timezone); err != nil {
				c.addf(p+".timezone", "%s", strings.TrimPrefix(err.Error(), "timezone: "))
			} else if strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
				c.addf(p+".timezone", "the cron expression has a TZ= prefix too; give the zone once")
			}
		}
		c.checkPriority(p+".priority", s.Priority)
		switch s.Catchup {
		case "", "none", "last", "all":
		default:
			c.addf(p+".catchup", "unknown policy %q (want none, last or all)", s.Catchup)
		}
		switch s.Overlap {
		case "", "allow", "skip":
		default:
			c.addf(p+".overlap", "unknown policy %q (want allow or skip)", s.Overlap)
		}
	}
}

func (c *checker) checkPriority(path, p string) {
	if p == "" {
		return
	}
	if _, err := spool.ParsePriority(p); err != nil {
		c.addf(path, "%v", err)
	}
}

// build compiles the schema and makes the handler and the engine's recipe.
func (c *checker) build(r *Recipe, l *Loader) {
	if len(r.InputSchema) > 0 {
		sch, err := compileSchema(r.Name, r.InputSchema)
		if err != nil {
			c.addf("input_schema", "%v", err)
			return
		}
		r.schema = sch
	}
	var h queue.Handler
	switch r.Kind {
	case KindExec:
		cfg := execx.Config{Command: r.Exec.Command, Dir: r.Exec.Dir, Env: r.Exec.Env, OutputCap: l.ExecOutputCap}
		if g := r.Exec.GraceSec; g != nil {
			cfg.Grace = time.Duration(*g) * time.Second
			if *g == 0 {
				cfg.Grace = -1 // SIGKILL at once
			}
		}
		h = execx.New(r.Dir, cfg)
	case KindLLM:
		s := r.LLM
		var err error
		h, err = llm.New(llm.Config{
			BaseURL: s.BaseURL, Model: s.Model, APIKeyEnv: s.APIKeyEnv, System: s.System,
			Prompt: s.Prompt, Temperature: s.Temperature, MaxTokens: s.MaxTokens,
			Client: l.HTTPClient, LookupEnv: l.lookupEnv(),
		})
		if err != nil {
			c.addf("llm", "%v", err)
			return
		}
	}
	j := r.Runtime.Job
	q := &queue.Recipe{
		Name:             r.Name,
		Handler:          h,
		TimeoutSec:       j.TimeoutSec,
		MaxRetries:       j.MaxRetries,
		WebhookURL:       j.WebhookURL,
		WebhookEvents:    j.Events,
		IdempotencyScope: j.IdempotencyScope,
		ConcurrencyMax:   r.Runtime.Concurrency.Max,
		ValidateInput:    r.ValidateInput,
	}
	if q.TimeoutSec == 0 {
		q.TimeoutSec = r.Runtime.Background.TimeoutSec
	}
	if j.Priority != "" {
		p, _ := spool.ParsePriority(j.Priority)
		q.Priority = &p
	}
	if rt := r.Runtime.Rate; rt != nil {
		per, _ := time.ParseDuration(rt.Per)
		q.Rate = &queue.Rate{Limit: rt.Limit, Per: per, Burst: rt.Burst}
	}
	for _, s := range r.Runtime.Schedules {
		rs := queue.RecipeSchedule{Name: s.Name, Cron: s.Cron, Every: s.Every, Timezone: s.Timezone,
			Input: s.Input, Catchup: s.Catchup, Overlap: s.Overlap}
		if s.Priority != "" {
			p, _ := spool.ParsePriority(s.Priority)
			rs.Priority = &p
		}
		q.Schedules = append(q.Schedules, rs)
	}
	if r.Enabled() && r.schema == nil {
		q.ValidateInput = nil
	}
	r.queue = q
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
