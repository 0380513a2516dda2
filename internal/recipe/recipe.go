// Package recipe loads recipe files (YAML) into validated recipes and the engine's
// [queue.Recipe] values, with handlers built by the exec and llm executors.
//
// A recipe directory holds NAME/TEMPLATE.yaml (PraisonAI's layout, with the recipe's scripts
// beside it) or NAME.yaml. Decoding is strict: unknown keys, wrong types and missing required
// fields are reported with the file, the line, the key path and the reason. ${VAR} and
// ${VAR:-default} expand from the environment in every value.
package recipe

import (
	"encoding/json"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/spool-run/spool/queue"
)

// The recipe kinds.
const (
	KindExec = "exec" // runs a command
	KindLLM  = "llm"  // calls an OpenAI-compatible chat-completions API
)

// Recipe is one loaded, validated recipe. Its JSON form is what GET /api/v1/recipes and
// `spool recipe show` print.
type Recipe struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
	Version     string `yaml:"version" json:"version,omitempty"`
	// Kind is KindExec or KindLLM.
	Kind string    `yaml:"kind" json:"kind"`
	Exec *ExecSpec `yaml:"exec" json:"exec,omitempty"`
	LLM  *LLMSpec  `yaml:"llm" json:"llm,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12 unless $schema says otherwise) that a
	// run's input must match; nil accepts any input.
	InputSchema json.RawMessage `yaml:"input_schema" json:"input_schema,omitempty"`
	// Runtime holds the defaults of the recipe's runs.
	Runtime Runtime `yaml:"runtime" json:"runtime"`

	// File is the recipe file it was loaded from.
	File string `yaml:"-" json:"file"`
	// Dir is the recipe's folder: the working directory of exec commands.
	Dir string `yaml:"-" json:"-"`

	schema *jsonschema.Schema
	queue  *queue.Recipe
}

// ExecSpec is the exec block: what command to run and how.
type ExecSpec struct {
	// Command is the argv; never a shell string. A relative path with a slash
	// (./run.sh) is taken from the working directory.
	Command []string `yaml:"command" json:"command"`
	// Dir is the working directory, relative to the recipe's folder; default the folder.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// Env adds variables to the command's environment. Values are not shown by the API.
	Env map[string]string `yaml:"env" json:"-"`
	// GraceSec is how long a stopped command has between SIGTERM and SIGKILL; default 10.
	GraceSec *int `yaml:"grace_sec" json:"grace_sec,omitempty"`
}

// LLMSpec is the llm block: which OpenAI-compatible model to call and with what prompt.
type LLMSpec struct {
	// BaseURL is the API's base, such as https://api.openai.com/v1 or
	// http://127.0.0.1:11434/v1 (Ollama); default $OPENAI_BASE_URL, else OpenAI's.
	BaseURL string `yaml:"base_url" json:"base_url,omitempty"`
	// Model is required.
	Model string `yaml:"model" json:"model"`
	// APIKeyEnv names the variable holding the API key; default OPENAI_API_KEY.
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	// System is the system message, if any.
	System string `yaml:"system" json:"system,omitempty"`
	// Prompt is a Go text/template executed with the run's input; default: the input itself
	// when it is a string, its "prompt" field when it is an object with one, else its JSON.
	Prompt string `yaml:"prompt" json:"prompt,omitempty"`
	// Temperature, 0 to 2; default the server's.
	Temperature *float64 `yaml:"temperature" json:"temperature,omitempty"`
	// MaxTokens bounds the answer; 0 leaves it to the server.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens,omitempty"`
}

// Runtime is the runtime block: defaults for runs of the recipe.
type Runtime struct {
	Job         JobDefaults        `yaml:"job" json:"job"`
	Background  BackgroundDefaults `yaml:"background" json:"background"`
	Concurrency Concurrency        `yaml:"concurrency" json:"concurrency"`
	// Rate limits how often runs of the recipe start, on every node together (a token bucket
	// held in the database).
	Rate *Rate `yaml:"rate" json:"rate,omitempty"`
	// Schedules start runs of the recipe on a cron expression or an interval.
	Schedules []Schedule `yaml:"schedules" json:"schedules,omitempty"`
}

// JobDefaults are the defaults of a submitted run. A submit's own fields win.
type JobDefaults struct {
	// Enabled false refuses submits of the recipe; default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// TimeoutSec bounds one attempt; 0 takes the server default.
	TimeoutSec int `yaml:"timeout_sec" json:"timeout_sec,omitempty"`
	// MaxRetries is how many times a retryable failure is retried; default the server's (0).
	MaxRetries *int `yaml:"max_retries" json:"max_retries,omitempty"`
	// Priority is urgent, high, normal or low.
	Priority string `yaml:"priority" json:"priority,omitempty"`
	// WebhookURL receives the run's webhook events.
	WebhookURL string `yaml:"webhook_url" json:"webhook_url,omitempty"`
	// IdempotencyScope is global, session or none.
	IdempotencyScope string `yaml:"idempotency_scope" json:"idempotency_scope,omitempty"`
	// Events are the webhook events: completed, succeeded, failed, cancelled, timeout.
	Events []string `yaml:"events" json:"events,omitempty"`
}

// BackgroundDefaults is PraisonAI's background block. Its timeout_sec is used when
// job.timeout_sec is not set.
type BackgroundDefaults struct {
	TimeoutSec int `yaml:"timeout_sec" json:"timeout_sec,omitempty"`
}

// Concurrency limits the recipe's agent.
type Concurrency struct {
	// Max is how many runs of the recipe's agent may run at once, cluster-wide; 0 = only
	// the server's limits. The server's --max-per-agent for this agent wins.
	Max int `yaml:"max" json:"max,omitempty"`
}

// Rate is a token-bucket rate limit: Limit runs per Per, with bursts up to Burst.
type Rate struct {
	Limit int `yaml:"limit" json:"limit"`
	// Per is a Go duration such as "1m" or "1h".
	Per   string `yaml:"per" json:"per"`
	Burst int    `yaml:"burst" json:"burst,omitempty"`
}

// Schedule starts runs of the recipe on a cron expression or at a fixed interval.
type Schedule struct {
	Name string `yaml:"name" json:"name"`
	// Cron is a cron expression with optional seconds, or a descriptor (@hourly).
	Cron string `yaml:"cron" json:"cron,omitempty"`
	// Every is an interval (a Go duration such as "15m"), instead of Cron.
	Every string `yaml:"every" json:"every,omitempty"`
	// Timezone is an IANA zone name for Cron; default UTC.
	Timezone string          `yaml:"timezone" json:"timezone,omitempty"`
	Input    json.RawMessage `yaml:"input" json:"input,omitempty"`
	Priority string          `yaml:"priority" json:"priority,omitempty"`
	// Catchup is what to do with ticks missed while down: none, last or all.
	Catchup string `yaml:"catchup" json:"catchup,omitempty"`
	// Overlap is allow (start a tick's run even while the previous one is active) or skip.
	Overlap string `yaml:"overlap" json:"overlap,omitempty"`
}

// Enabled reports whether runs of the recipe may be submitted (runtime.job.enabled).
func (r *Recipe) Enabled() bool {
	return r.Runtime.Job.Enabled == nil || *r.Runtime.Job.Enabled
}

// QueueRecipe returns what the engine needs to run the recipe: its handler and defaults.
func (r *Recipe) QueueRecipe() *queue.Recipe { return r.queue }

// ValidateInput checks input against the recipe's input_schema. A mismatch is an
// *spool.Error with code invalid whose Fields name each failing location.
func (r *Recipe) ValidateInput(input json.RawMessage) error {
	return validateInput(r, input)
}
