package recipe_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/recipe"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testBundle is a recipe directory with a fixed environment.
type testBundle struct {
	dir    string
	loader *recipe.Loader
}

func setup(t *testing.T, files map[string]string) *testBundle {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"HOOK_HOST": "hooks.example.com", "TIMEOUT": "900", "EMPTY": ""}
	return &testBundle{dir: dir, loader: &recipe.Loader{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}}
}

func (b *testBundle) load(t *testing.T) *recipe.Set {
	t.Helper()
	return b.loader.Load(b.dir)
}

const echoRecipe = `
name: echo
kind: exec
exec: {command: ["sh", "-c", "cat"]}
`

// catRecipe is a valid recipe of two lines, without a name (the file gives it).
const catRecipe = "kind: exec\nexec: {command: [cat]}\n"

// loadOne loads a single recipe file called r.yaml and returns its problems.
func loadOne(t *testing.T, content string) (*recipe.Recipe, *recipe.FileError) {
	t.Helper()
	b := setup(t, map[string]string{"r.yaml": content})
	set := b.load(t)
	if errs := set.Errors(); len(errs) > 0 {
		if len(errs) != 1 {
			t.Fatalf("errors = %v", errs)
		}
		return nil, errs[0]
	}
	r, ok := set.Get("r")
	if !ok {
		t.Fatal("recipe r not loaded")
	}
	return r, nil
}

func TestLoadBothLayouts(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"echo/TEMPLATE.yaml": echoRecipe,
		"flat.yaml":          "kind: exec\nexec: {command: [cat]}\n",
		"short.yml":          "kind: exec\nexec: {command: [cat]}\n",
		"notes/README.md":    "a folder without a template is not a recipe",
		".hidden.yaml":       "not: loaded",
		"README.md":          "ignored",
	})
	set := b.load(t)
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := set.Names(), []string{"echo", "flat", "short"}; !reflect.DeepEqual(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
	r, _ := set.Get("echo")
	if r.Dir != filepath.Join(b.dir, "echo") || r.File != filepath.Join(b.dir, "echo", "TEMPLATE.yaml") {
		t.Errorf("dir, file = %s, %s", r.Dir, r.File)
	}
	if r, _ := set.Get("flat"); r.Dir != b.dir {
		t.Errorf("flat recipe dir = %s", r.Dir)
	}
}

func TestStrictDecodingNamesFileKeyAndReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		want          []string // substrings of the error, in order of problems
	}{
		{"unknown key", catRecipe + "runtime:\n  job:\n    timeout: 5\n",
			[]string{"r.yaml:5: runtime.job.timeout: unknown key (want one of enabled, events, idempotency_scope, max_retries, priority, timeout_sec, webhook_url)"}},
		{"unknown top-level key", catRecipe + "agent_file: x.py\n", []string{"r.yaml:3: agent_file: unknown key"}},
		{"wrong type int", catRecipe + "runtime:\n  job:\n    timeout_sec: ten\n", []string{`r.yaml:5: runtime.job.timeout_sec: must be an integer, got string "ten"`}},
		{"quoted number is a string", catRecipe + "runtime:\n  job:\n    max_retries: \"3\"\n", []string{`runtime.job.max_retries: must be an integer, got string "3"`}},
		{"wrong type list", "kind: exec\nexec:\n  command: python3 main.py\n", []string{`r.yaml:3: exec.command: must be a list, got string "python3 main.py"`}},
		{"wrong type mapping", "kind: exec\nexec: [cat]\n", []string{"r.yaml:2: exec: must be a mapping, got a list"}},
		{"wrong type in list", "kind: exec\nexec: {command: [cat, [x]]}\n", []string{"exec.command[1]: must be a string, got a list"}},
		{"bool", catRecipe + "runtime: {job: {enabled: maybe}}\n", []string{`runtime.job.enabled: must be true or false, got string "maybe"`}},
		{"missing kind", "exec: {command: [cat]}\n", []string{"kind: required (exec or llm)"}},
		{"missing command", "kind: exec\nexec: {dir: .}\n", []string{"r.yaml:2: exec.command: required"}},
		{"missing exec block", "kind: exec\n", []string{"exec: required with kind exec"}},
		{"missing model", "kind: llm\nllm: {base_url: 'http://127.0.0.1:1/v1'}\n", []string{"r.yaml:2: llm.model: required"}},
		{"wrong block", catRecipe + "llm: {model: x}\n", []string{"llm: not allowed with kind exec"}},
		{"unknown kind", "kind: docker\n", []string{`kind: unknown kind "docker" (want exec or llm)`}},
		{"duplicate key", catRecipe + "description: a\ndescription: b\n", []string{"r.yaml:4: description: duplicate key"}},
		{"bad priority", catRecipe + "runtime: {job: {priority: asap}}\n", []string{`runtime.job.priority: unknown priority "asap"`}},
		{"bad scope", catRecipe + "runtime: {job: {idempotency_scope: user}}\n", []string{`runtime.job.idempotency_scope: unknown scope "user"`}},
		{"bad event", catRecipe + "runtime: {job: {events: [completed, exploded]}}\n", []string{`runtime.job.events[1]: unknown event "exploded"`}},
		{"timeout range", catRecipe + "runtime: {job: {timeout_sec: -1}}\n", []string{"runtime.job.timeout_sec: must be between 0 and 2592000"}},
		{"bad webhook", catRecipe + "runtime: {job: {webhook_url: 'ftp://x'}}\n", []string{`runtime.job.webhook_url: "ftp://x" is not an http(s) URL`}},
		{"bad env name", "kind: exec\nexec: {command: [cat], env: {'A-B': x}}\n", []string{"exec.env.A-B: not a valid variable name"}},
		{"missing script", "kind: exec\nexec: {command: [./nope.sh]}\n", []string{"exec.command[0]: ./nope.sh not found"}},
		{"script not executable", "kind: exec\nexec: {command: [./r.yaml]}\n", []string{"exec.command[0]: ./r.yaml is not executable"}},
		{"missing dir", "kind: exec\nexec: {command: [cat], dir: nowhere}\n", []string{"exec.dir:", "is not a directory"}},
		{"bad template", "kind: llm\nllm: {model: m, prompt: '{{.x'}\n", []string{"llm.prompt:", "unclosed action"}},
		{"api key, not name", "kind: llm\nllm: {model: m, api_key_env: sk-123}\n", []string{`llm.api_key_env: "sk-123" is not a variable name`}},
		{"temperature", "kind: llm\nllm: {model: m, temperature: 3}\n", []string{"llm.temperature: must be between 0 and 2"}},
		{"name mismatch", "name: other\n" + strings.TrimPrefix(echoRecipe, "\nname: echo\n"), []string{`name: "other" does not match the name its file gives it ("r")`}},
		{"invalid yaml", "kind: exec\nexec: {command: [cat]\n", []string{"r.yaml:1: invalid YAML: did not find expected"}},
		{"empty file", "", []string{"file is empty"}},
		{"two documents", catRecipe + "---\nkind: llm\n", []string{"more than one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping, got a list"}},
		{"bad substitution", catRecipe + "description: ${NOT CLOSED\n", []string{"description: unterminated ${"}},
		{"bad schema", catRecipe + "input_schema: {type: objekt}\n", []string{"input_schema:"}},
		{"external ref", catRecipe + "input_schema: {$ref: 'https://example.com/s.json'}\n", []string{"input_schema:", "external $ref"}},
		{"rate shape", catRecipe + "runtime: {rate: {limit: 0, per: soon, burst: -1}}\n", []string{
			"runtime.rate.limit: must be greater than 0", `runtime.rate.per: "soon" is not a positive duration`, "runtime.rate.burst: must not be negative"}},
		{"schedule shape", catRecipe + `runtime:
  schedules:
    - {name: a, cron: "61 * * * *"}
    - {name: a, every: 5m, timezone: Mars/Olympus, catchup: some, overlap: maybe, priority: top}
    - {name: c}
    - {name: d, cron: "@hourly", every: 1h}
`, []string{
			"runtime.schedules[0].cron:", `runtime.schedules[1].name: duplicate schedule name "a"`,
			`runtime.schedules[1].timezone: unknown time zone "Mars/Olympus"`, `runtime.schedules[1].priority: unknown priority "top"`,
			`runtime.schedules[1].catchup: unknown policy "some"`, `runtime.schedules[1].overlap: unknown policy "maybe"`,
			"runtime.schedules[2]: needs cron or every", "runtime.schedules[3]: give cron or every, not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, ferr := loadOne(t, tc.content)
			if ferr == nil {
				t.Fatal("loaded; want an error")
			}
			msg := ferr.Error()
			if !strings.Contains(msg, "r.yaml") {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", msg, w)
				}
			}
		})
	}
}

func TestAllProblemsOfAFileAreReported(t *testing.T) {
	t.Parallel()
	_, ferr := loadOne(t, "kind: exec\nexec: {command: [cat], grace: 3}\nruntime: {job: {timeout_sec: x, max_retries: y}}\n")
	if ferr == nil || len(ferr.Problems) != 3 {
		t.Fatalf("problems = %+v, want 3", ferr)
	}
	var paths []string
	for _, p := range ferr.Problems {
		paths = append(paths, p.Path)
		if p.Line == 0 {
			t.Errorf("problem %+v has no line", p)
		}
	}
	if want := []string{"exec.grace", "runtime.job.timeout_sec", "runtime.job.max_retries"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
	b, _ := json.Marshal(ferr)
	var decoded map[string]any
	json.Unmarshal(b, &decoded)
	if decoded["file"] == nil || !strings.Contains(decoded["error"].(string), "exec.grace") || len(decoded["problems"].([]any)) != 3 {
		t.Errorf("JSON = %s", b)
	}
}

func TestBrokenRecipeDoesNotHideOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"good/TEMPLATE.yaml":   "kind: exec\nexec: {command: [cat]}\n",
		"broken/TEMPLATE.yaml": "kind: exec\nexec: {command: [cat]}\nruntime: {job: {timout_sec: 5}}\n",
		"worse.yaml":           "{{{{",
		"also-good.yaml":       "kind: llm\nllm: {model: m}\n",
	})
	set := b.load(t)
	if got, want := set.Names(), []string{"also-good", "good"}; !reflect.DeepEqual(got, want) {
		t.Errorf("loaded = %v, want %v", got, want)
	}
	errs := set.Errors()
	if len(errs) != 2 || errs[0].Recipe != "broken" || errs[1].Recipe != "worse" {
		t.Fatalf("errors = %v", errs)
	}
	if !strings.Contains(errs[0].Error(), filepath.Join("broken", "TEMPLATE.yaml")+":3: runtime.job.timout_sec: unknown key") {
		t.Errorf("error = %s", errs[0])
	}
	if len(set.Recipes()) != 2 {
		t.Errorf("queue recipes = %d", len(set.Recipes()))
	}
	if _, ok := set.Get("broken"); ok {
		t.Error("broken recipe is served")
	}
}

func TestDuplicateNamesLoadNeither(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"echo/TEMPLATE.yaml": echoRecipe,
		"echo.yaml":          echoRecipe,
		"other.yaml":         "kind: exec\nexec: {command: [cat]}\n",
	})
	set := b.load(t)
	if got := set.Names(); !reflect.DeepEqual(got, []string{"other"}) {
		t.Errorf("loaded = %v", got)
	}
	if errs := set.Errors(); len(errs) != 2 || !strings.Contains(errs[0].Error(), "also defined in") {
		t.Errorf("errors = %v", errs)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, `
kind: exec
description: costs $5, literal $${HOOK_HOST}, bare $HOOK_HOST
exec:
  command: ["sh", "-c", "echo ${HOOK_HOST}"]
  env: {TARGET: "${MISSING:-https://${HOOK_HOST}/in}", EMPTYDEF: "${EMPTY:-d}"}
runtime:
  job:
    timeout_sec: ${TIMEOUT}
    max_retries: ${RETRIES:-2}
    webhook_url: "https://${HOOK_HOST}/hook"
    priority: ${PRIORITY:-high}
input_schema:
  type: object
  properties:
    host: {type: string, default: "${HOOK_HOST}"}
`)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if r.Description != "costs $5, literal ${HOOK_HOST}, bare $HOOK_HOST" {
		t.Errorf("description = %q", r.Description)
	}
	if got := r.Exec.Command[2]; got != "echo hooks.example.com" {
		t.Errorf("command = %q", got)
	}
	if got := r.Exec.Env; got["TARGET"] != "https://hooks.example.com/in" || got["EMPTYDEF"] != "d" {
		t.Errorf("env = %v", got)
	}
	q := r.QueueRecipe()
	if q.TimeoutSec != 900 || q.MaxRetries == nil || *q.MaxRetries != 2 || q.WebhookURL != "https://hooks.example.com/hook" ||
		q.Priority == nil || *q.Priority != spool.PriorityHigh {
		t.Errorf("queue recipe = %+v", q)
	}
	if !strings.Contains(string(r.InputSchema), `"default":"hooks.example.com"`) {
		t.Errorf("input_schema = %s", r.InputSchema)
	}

	_, ferr = loadOne(t, catRecipe+"runtime: {job: {timeout_sec: '${UNSET}'}}\n")
	if ferr == nil || !strings.Contains(ferr.Error(), `runtime.job.timeout_sec: must be an integer, got ""`) {
		t.Errorf("unset variable in an integer: %v", ferr)
	}
}

func TestQueueRecipeDefaults(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, `
kind: exec
description: d
version: 1.2
exec: {command: [cat]}
runtime:
  job:
    enabled: true
    timeout_sec: 600
    max_retries: 0
    priority: low
    webhook_url: https://example.com/h
    idempotency_scope: session
    events: [completed, failed]
  concurrency: {max: 2}
`)
	if ferr != nil {
		t.Fatal(ferr)
	}
	q := r.QueueRecipe()
	zero := 0
	low := spool.PriorityLow
	want := &queue.Recipe{
		Name: "r", TimeoutSec: 600, MaxRetries: &zero, Priority: &low, WebhookURL: "https://example.com/h",
		WebhookEvents: []string{"completed", "failed"}, IdempotencyScope: "session", ConcurrencyMax: 2,
	}
	got := *q
	got.Handler, got.ValidateInput = nil, nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("queue recipe = %+v, want %+v", got, want)
	}
	if q.Handler == nil {
		t.Error("no handler")
	}
	if q.ValidateInput != nil {
		t.Error("ValidateInput set without a schema")
	}
	if r.Version != "1.2" {
		t.Errorf("version = %q", r.Version)
	}

	r, ferr = loadOne(t, "kind: exec\nexec: {command: [cat]}\nruntime: {background: {timeout_sec: 77}}\n")
	if ferr != nil {
		t.Fatal(ferr)
	}
	if r.QueueRecipe().TimeoutSec != 77 {
		t.Errorf("background.timeout_sec is not the fallback: %d", r.QueueRecipe().TimeoutSec)
	}
}

func TestDisabledRecipeRefusesRuns(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, "kind: exec\nexec: {command: [cat]}\nruntime: {job: {enabled: false}}\n")
	if ferr != nil {
		t.Fatal(ferr)
	}
	err := r.QueueRecipe().ValidateInput(json.RawMessage(`{}`))
	var se *spool.Error
	if !errors.As(err, &se) || se.Code != spool.CodeUnprocessable || !strings.Contains(se.Message, "enabled") {
		t.Errorf("err = %v", err)
	}
}

func TestInputSchemaValidation(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, `
kind: exec
exec: {command: [cat]}
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string, minLength: 1}
    n: {type: integer, minimum: 1}
    email: {type: string, format: email}
    items:
      type: array
      items: {type: object, required: [id]}
  additionalProperties: false
`)
	if ferr != nil {
		t.Fatal(ferr)
	}
	validate := r.QueueRecipe().ValidateInput
	if validate == nil {
		t.Fatal("no ValidateInput")
	}
	for _, ok := range []string{`{"text": "x"}`, `{"text": "x", "n": 3, "items": [{"id": 1}], "email": "a@b.c"}`} {
		if err := validate(json.RawMessage(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	err := validate(json.RawMessage(`{"n": 0, "extra": true, "email": "not-an-email", "items": [{"id": 1}, {}]}`))
	var se *spool.Error
	if !errors.As(err, &se) || se.Code != spool.CodeInvalid {
		t.Fatalf("err = %v, want *spool.Error invalid", err)
	}
	var fields []string
	for _, f := range se.Fields {
		fields = append(fields, f.Field)
		if f.Reason == "" {
			t.Errorf("field %s has no reason", f.Field)
		}
	}
	want := []string{"input", "input", "input.email", "input.items[1]", "input.n"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %v, want %v (%v)", fields, want, se.Fields)
	}
	for _, s := range []string{"text", "extra", "email", "minimum"} {
		if !strings.Contains(se.Message, s) {
			t.Errorf("message %q does not mention %q", se.Message, s)
		}
	}
	for _, bad := range []string{`null`, ``, `"a string"`, `{"text": ""}`} {
		if err := validate(json.RawMessage(bad)); err == nil {
			t.Errorf("%q validated", bad)
		}
	}
}

func TestValidatePaths(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"a/TEMPLATE.yaml":      "kind: exec\nexec: {command: [cat]}\n",
		"b.yaml":               "kind: exec\nexec: {command: [cat]}\n",
		"more/c.yaml":          "kind: exec\nexec: {command: [cat]}\n",
		"more/d/TEMPLATE.yaml": "kind: nope\n",
	})
	set := b.loader.Validate(filepath.Join(b.dir, "a"), filepath.Join(b.dir, "b.yaml"), filepath.Join(b.dir, "more"),
		filepath.Join(b.dir, "a", "TEMPLATE.yaml"), filepath.Join(b.dir, "missing.yaml"))
	// a is given twice: as a folder and as its file.
	if got := set.Names(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("valid = %v", got)
	}
	var failed []string
	for _, e := range set.Errors() {
		failed = append(failed, e.Recipe)
	}
	if want := []string{"missing", "d"}; !reflect.DeepEqual(failed, want) {
		t.Errorf("failed = %v, want %v (%v)", failed, want, set.Err())
	}
}

func TestRecipeJSON(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, `
kind: exec
description: shows
exec: {command: [cat], env: {SECRET: hunter2}}
input_schema: {type: object}
runtime: {job: {timeout_sec: 5}}
`)
	if ferr != nil {
		t.Fatal(ferr)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"name":"r"`, `"kind":"exec"`, `"description":"shows"`, `"input_schema":{"type":"object"}`,
		`"runtime":{"job":{"timeout_sec":5}`, `"command":["cat"]`, `"file":"`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s lacks %s", s, want)
		}
	}
	if strings.Contains(s, "hunter2") {
		t.Errorf("JSON shows exec.env values: %s", s)
	}
}

func TestSourceReload(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"one.yaml": "kind: exec\nexec: {command: [cat]}\n"})
	src, err := recipe.Open(b.dir, b.loader)
	if err != nil {
		t.Fatal(err)
	}
	if src.Bundled || src.Dir != b.dir {
		t.Errorf("source = %+v", src)
	}
	if got := src.Set().Names(); !reflect.DeepEqual(got, []string{"one"}) {
		t.Errorf("names = %v", got)
	}
	os.WriteFile(filepath.Join(b.dir, "two.yaml"), []byte("kind: exec\nexec: {command: [cat]}\n"), 0o644)
	os.WriteFile(filepath.Join(b.dir, "one.yaml"), []byte("kind: bad\n"), 0o644)
	set := src.Reload()
	if got := set.Names(); !reflect.DeepEqual(got, []string{"two"}) {
		t.Errorf("after reload: names = %v", got)
	}
	if len(set.Errors()) != 1 || src.Set() != set {
		t.Errorf("after reload: errors = %v", set.Errors())
	}

	if _, err := recipe.Open(filepath.Join(b.dir, "nope"), nil); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
	set = b.loader.Load(filepath.Join(b.dir, "nope"))
	if len(set.Errors()) != 1 || !strings.Contains(set.Err().Error(), "cannot read the recipe directory") {
		t.Errorf("Load of a missing directory: %v", set.Err())
	}
}

func TestBundledExamplesAreExtracted(t *testing.T) {
	// Not parallel: it sets XDG_CACHE_HOME so that the extraction stays in a temp dir.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Chdir(t.TempDir()) // no ./recipes here
	dir, bundled, err := recipe.Resolve("")
	if err != nil || !bundled {
		t.Fatalf("Resolve = %s, %v, %v", dir, bundled, err)
	}
	again, _, err := recipe.Resolve("")
	if err != nil || again != dir {
		t.Errorf("second Resolve = %s, %v; want the same directory %s", again, err, dir)
	}
	set := recipe.Load(dir)
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo", "countdown", "flaky", "sleep", "llm"} {
		if _, ok := set.Get(name); !ok {
			t.Errorf("bundled recipe %s missing", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "countdown", "countdown.sh")); err != nil {
		t.Errorf("scripts are not extracted: %v", err)
	}

	os.Mkdir("recipes", 0o755)
	got, bundled, err := recipe.Resolve("")
	if err != nil || bundled || filepath.Base(got) != "recipes" {
		t.Errorf("with ./recipes: Resolve = %s, %v, %v", got, bundled, err)
	}
}

func TestRateAndSchedulesReachTheEngine(t *testing.T) {
	t.Parallel()
	r, ferr := loadOne(t, catRecipe+`runtime:
  rate: {limit: 60, per: 1m, burst: 10}
  schedules:
    - {name: nightly, cron: "30 2 * * *", timezone: Europe/Berlin, priority: high, catchup: last, input: {q: 1}}
    - {name: often, every: 15m, overlap: skip}
`)
	if ferr != nil {
		t.Fatal(ferr)
	}
	q := r.QueueRecipe()
	if q.Rate == nil || q.Rate.Limit != 60 || q.Rate.Per != time.Minute || q.Rate.Burst != 10 {
		t.Errorf("rate = %+v", q.Rate)
	}
	if len(q.Schedules) != 2 {
		t.Fatalf("schedules = %+v", q.Schedules)
	}
	n, o := q.Schedules[0], q.Schedules[1]
	if n.Name != "nightly" || n.Cron != "30 2 * * *" || n.Timezone != "Europe/Berlin" || n.Priority == nil ||
		*n.Priority != spool.PriorityHigh || n.Catchup != "last" || string(n.Input) != `{"q":1}` {
		t.Errorf("nightly = %+v", n)
	}
	if o.Every != "15m" || o.Overlap != "skip" || o.Priority != nil {
		t.Errorf("often = %+v", o)
	}
	for _, bad := range []string{
		`{name: a, cron: "0 0 30 2 *"}`,
		`{name: a, cron: "@daily", timezone: Local}`,
		`{name: a, cron: "TZ=UTC @daily", timezone: Europe/Berlin}`,
	} {
		if _, ferr := loadOne(t, catRecipe+"runtime:\n  schedules:\n    - "+bad+"\n"); ferr == nil {
			t.Errorf("schedule %s loaded", bad)
		}
	}
}
