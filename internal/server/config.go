package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/spool-run/spool/queue"
)

// Config is everything `spool server` and `spool worker` are configured with. The flag,
// environment and config-file names are in [serverSettings]; fields below the first group
// are for programs and tests that start a server in-process.
type Config struct {
	Host string
	// Port is the TCP port; 0 picks a free one (see [Server.Addr]).
	Port int
	// DB is a SQLite file path or a postgres:// URL.
	DB string
	// Recipes is the recipe directory ("" = ./recipes, else the bundled examples).
	Recipes string
	// MaxConcurrent is the cluster-wide limit of running runs (0 = unlimited).
	MaxConcurrent int
	// MaxPerAgent and MaxPerWorkspace limit running runs per group (0 = unlimited).
	MaxPerAgent, MaxPerWorkspace int
	// AgentRates and WorkspaceRates limit how often runs of an agent or workspace start
	// (NAME "*": every one without its own rate).
	AgentRates, WorkspaceRates map[string]queue.Rate
	// MaxQueueSize refuses submits beyond this many queued and paused runs (0 = unlimited).
	MaxQueueSize int
	// DefaultTimeout bounds an attempt when neither the submit nor the recipe says.
	DefaultTimeout time.Duration
	// Retention is how long terminal runs are kept (0 = forever).
	Retention time.Duration
	// Workers is how many runs this node executes at once: -1 follows --max-concurrent,
	// 0 serves the API only.
	Workers int
	// APIKey is a token valid for every workspace.
	APIKey string
	// TokensFile is a YAML list of {token, workspace}.
	TokensFile string
	// WebhookSecret is a Standard Webhooks secret (whsec_BASE64) that signs deliveries.
	WebhookSecret string
	// AllowPrivateWebhooks lets webhooks reach private, loopback and link-local addresses.
	AllowPrivateWebhooks bool
	// WebhookRetryWindow is how long a failing delivery is retried.
	WebhookRetryWindow time.Duration
	// Insecure allows a non-loopback bind without tokens.
	Insecure bool
	// LogFormat is text or json ("" = text on a terminal, else json).
	LogFormat string
	// MaxBody caps request bodies in bytes.
	MaxBody int64
	// UI serves the web dashboard at /.
	UI bool

	// GoRecipes are recipes with Go handlers, registered beside the recipe files (they win
	// on a name clash and survive reloads).
	GoRecipes []*queue.Recipe
	// NoRecipeDir skips loading a recipe directory: only GoRecipes exist.
	NoRecipeDir bool
	// Logger overrides LogFormat (tests pass one writing to t.Log or io.Discard).
	Logger *slog.Logger
	// Heartbeat is the SSE heartbeat interval (default 15s).
	Heartbeat time.Duration
	// WebhookRetryBase is the delay before a webhook's first retry (default 5s).
	WebhookRetryBase time.Duration
	// WebhookPollInterval is how often due deliveries are looked for (default 5s).
	WebhookPollInterval time.Duration
	// ShutdownGrace is how long running runs may finish at shutdown before they are
	// cancelled (default 25s).
	ShutdownGrace time.Duration
	// Engine, when set, adjusts the engine's configuration before it is created.
	Engine func(*queue.Config)
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		Host:               "127.0.0.1",
		Port:               8005,
		DB:                 "./.spool/spool.db",
		MaxConcurrent:      queue.DefaultMaxConcurrent,
		MaxQueueSize:       queue.DefaultMaxQueueSize,
		DefaultTimeout:     queue.DefaultTimeout,
		Retention:          queue.DefaultRetention,
		Workers:            -1,
		WebhookRetryWindow: 24 * time.Hour,
		MaxBody:            4 << 20,
		UI:                 true,
	}
}

// setting is one configuration key: its flag, its environment variables (first wins) and
// whether only the HTTP server has it.
type setting struct {
	flag  string
	envs  []string
	http  bool
	usage string
	bind  func(fs *pflag.FlagSet, c *Config, name, usage string)
}

func intFlag(field func(*Config) *int) func(*pflag.FlagSet, *Config, string, string) {
	return func(fs *pflag.FlagSet, c *Config, name, usage string) {
		p := field(c)
		fs.IntVar(p, name, *p, usage)
	}
}

func stringFlag(field func(*Config) *string) func(*pflag.FlagSet, *Config, string, string) {
	return func(fs *pflag.FlagSet, c *Config, name, usage string) {
		p := field(c)
		fs.StringVar(p, name, *p, usage)
	}
}

func boolFlag(field func(*Config) *bool) func(*pflag.FlagSet, *Config, string, string) {
	return func(fs *pflag.FlagSet, c *Config, name, usage string) {
		p := field(c)
		fs.BoolVar(p, name, *p, usage)
	}
}

func durationFlag(field func(*Config) *time.Duration, seconds bool) func(*pflag.FlagSet, *Config, string, string) {
	return func(fs *pflag.FlagSet, c *Config, name, usage string) {
		fs.Var(&durationValue{p: field(c), seconds: seconds}, name, usage)
	}
}

// serverSettings are the settings of `spool server`, in help order. Their names are part
// of the contract (DESIGN.md, Configuration).
var serverSettings = []setting{
	{flag: "host", envs: []string{"SPOOL_HOST", "PRAISONAI_JOBS_HOST"}, http: true,
		usage: "address to listen on; a non-loopback address needs tokens (or --insecure)",
		bind:  stringFlag(func(c *Config) *string { return &c.Host })},
	{flag: "port", envs: []string{"SPOOL_PORT", "PRAISONAI_JOBS_PORT"}, http: true,
		usage: "TCP port to listen on",
		bind:  intFlag(func(c *Config) *int { return &c.Port })},
	{flag: "db", envs: []string{"SPOOL_DB"},
		usage: "SQLite database file, or a postgres:// URL",
		bind:  stringFlag(func(c *Config) *string { return &c.DB })},
	{flag: "recipes", envs: []string{"SPOOL_RECIPES"},
		usage: "recipe directory (default ./recipes, else the bundled examples)",
		bind:  stringFlag(func(c *Config) *string { return &c.Recipes })},
	{flag: "max-concurrent", envs: []string{"SPOOL_MAX_CONCURRENT", "PRAISONAI_JOBS_MAX_CONCURRENT"},
		usage: "running runs at once across the cluster (0 = unlimited)",
		bind:  intFlag(func(c *Config) *int { return &c.MaxConcurrent })},
	{flag: "max-per-agent", envs: []string{"SPOOL_MAX_PER_AGENT"},
		usage: "running runs at once per agent (0 = unlimited; a recipe's runtime.concurrency.max overrides)",
		bind:  intFlag(func(c *Config) *int { return &c.MaxPerAgent })},
	{flag: "max-per-workspace", envs: []string{"SPOOL_MAX_PER_WORKSPACE"},
		usage: "running runs at once per workspace (0 = unlimited)",
		bind:  intFlag(func(c *Config) *int { return &c.MaxPerWorkspace })},
	{flag: "rate-agent", envs: []string{"SPOOL_RATE_AGENT"},
		usage: "rate limit of an agent, NAME=LIMIT/PER[:BURST] such as summarize=60/1m:10 (NAME * for every agent); repeat or separate with commas",
		bind: func(fs *pflag.FlagSet, c *Config, name, usage string) {
			fs.Var(&ratesValue{p: &c.AgentRates}, name, usage)
		}},
	{flag: "rate-workspace", envs: []string{"SPOOL_RATE_WORKSPACE"},
		usage: "rate limit of a workspace, NAME=LIMIT/PER[:BURST] (NAME * for every workspace); repeat or separate with commas",
		bind: func(fs *pflag.FlagSet, c *Config, name, usage string) {
			fs.Var(&ratesValue{p: &c.WorkspaceRates}, name, usage)
		}},
	{flag: "max-queue-size", envs: []string{"SPOOL_MAX_QUEUE_SIZE"},
		usage: "queued and paused runs beyond which submits are refused with 503 (0 = unlimited)",
		bind:  intFlag(func(c *Config) *int { return &c.MaxQueueSize })},
	{flag: "default-timeout", envs: []string{"SPOOL_DEFAULT_TIMEOUT", "PRAISONAI_JOBS_DEFAULT_TIMEOUT"},
		usage: "timeout of a run attempt when neither the submit nor the recipe sets one (seconds, or a duration such as 1h)",
		bind:  durationFlag(func(c *Config) *time.Duration { return &c.DefaultTimeout }, true)},
	{flag: "retention", envs: []string{"SPOOL_RETENTION"},
		usage: "how long finished runs are kept (0 = forever)",
		bind:  durationFlag(func(c *Config) *time.Duration { return &c.Retention }, false)},
	{flag: "workers", envs: []string{"SPOOL_WORKERS"},
		usage: "runs this node executes at once: -1 follows --max-concurrent, 0 serves the API only",
		bind:  intFlag(func(c *Config) *int { return &c.Workers })},
	{flag: "api-key", envs: []string{"SPOOL_API_KEY", "PRAISONAI_JOBS_API_KEY"}, http: true,
		usage: "API token for every workspace (Authorization: Bearer or X-API-Key)",
		bind:  stringFlag(func(c *Config) *string { return &c.APIKey })},
	{flag: "tokens", envs: []string{"SPOOL_TOKENS_FILE"}, http: true,
		usage: "YAML file listing {token, workspace} for workspace-scoped tokens",
		bind:  stringFlag(func(c *Config) *string { return &c.TokensFile })},
	{flag: "webhook-secret", envs: []string{"SPOOL_WEBHOOK_SECRET"},
		usage: "Standard Webhooks secret (whsec_BASE64) that signs webhook deliveries",
		bind:  stringFlag(func(c *Config) *string { return &c.WebhookSecret })},
	{flag: "allow-private-webhooks", envs: []string{"SPOOL_ALLOW_PRIVATE_WEBHOOKS"},
		usage: "let webhooks reach private, loopback and link-local addresses",
		bind:  boolFlag(func(c *Config) *bool { return &c.AllowPrivateWebhooks })},
	{flag: "webhook-retry-window", envs: []string{"SPOOL_WEBHOOK_RETRY_WINDOW"},
		usage: "how long a failing webhook delivery is retried",
		bind:  durationFlag(func(c *Config) *time.Duration { return &c.WebhookRetryWindow }, false)},
	{flag: "insecure", http: true,
		usage: "allow a non-loopback --host without API tokens",
		bind:  boolFlag(func(c *Config) *bool { return &c.Insecure })},
	{flag: "log-format", envs: []string{"SPOOL_LOG_FORMAT"},
		usage: "log format: text or json (default text on a terminal, else json)",
		bind:  stringFlag(func(c *Config) *string { return &c.LogFormat })},
	{flag: "max-body", envs: []string{"SPOOL_MAX_BODY"}, http: true,
		usage: "largest request body accepted (bytes, or a size such as 4MiB); larger bodies get 413",
		bind: func(fs *pflag.FlagSet, c *Config, name, usage string) {
			fs.Var(&bytesValue{p: &c.MaxBody}, name, usage)
		}},
	{flag: "ui", envs: []string{"SPOOL_UI"}, http: true,
		usage: "serve the web dashboard at /",
		bind:  boolFlag(func(c *Config) *bool { return &c.UI })},
}

// configFlag names the config file flag; SPOOL_CONFIG is its environment variable.
const configFlag = "config"

// bindFlags adds the settings to fs, bound to c; httpFlags false leaves out the HTTP ones
// (spool worker).
func bindFlags(fs *pflag.FlagSet, c *Config, httpFlags bool) {
	for _, s := range serverSettings {
		if s.http && !httpFlags {
			continue
		}
		usage := s.usage
		if len(s.envs) > 0 {
			usage += " [$" + strings.Join(s.envs, ", $") + "]"
		}
		s.bind(fs, c, s.flag, usage)
	}
	fs.String(configFlag, "", "YAML config file whose keys are these flags' names [$SPOOL_CONFIG]")
}

// applyEnvAndFile fills every flag not given on the command line from its environment
// variables, else from the config file: flag > env > file > default.
func applyEnvAndFile(fs *pflag.FlagSet, getenv func(string) string) error {
	path, _ := fs.GetString(configFlag)
	if path == "" {
		path = getenv("SPOOL_CONFIG")
	}
	var file map[string]string
	if path != "" {
		var err error
		if file, err = readConfigFile(path, fs); err != nil {
			return err
		}
	}
	for _, s := range serverSettings {
		f := fs.Lookup(s.flag)
		if f == nil || f.Changed {
			continue
		}
		var envSet bool
		for _, env := range s.envs {
			if v := getenv(env); v != "" {
				if err := fs.Set(s.flag, v); err != nil {
					return fmt.Errorf("$%s: %w", env, err)
				}
				envSet = true
				break
			}
		}
		if envSet {
			continue
		}
		if v, ok := file[s.flag]; ok {
			if err := fs.Set(s.flag, v); err != nil {
				return fmt.Errorf("%s: %s: %w", path, s.flag, err)
			}
		}
	}
	return nil
}

// readConfigFile reads a YAML mapping of flag names (dashes or underscores) to scalars.
// Unknown keys are errors that name them.
func readConfigFile(path string, fs *pflag.FlagSet) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := map[string]string{}
	if len(doc.Content) == 0 {
		return out, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want a mapping of setting names to values", path)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := strings.ReplaceAll(k.Value, "_", "-")
		f := fs.Lookup(name)
		if f == nil || name == configFlag {
			return nil, fmt.Errorf("%s:%d: unknown setting %q", path, k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: %s: want a single value", path, v.Line, k.Value)
		}
		if v.Tag == "!!null" {
			continue
		}
		out[name] = v.Value
	}
	return out, nil
}

// ratesValue is a repeatable flag of NAME=LIMIT/PER[:BURST] rate limits; one value may hold
// several, separated by commas (as environment variables and config files give them).
type ratesValue struct {
	p   *map[string]queue.Rate
	set bool
}

func (r *ratesValue) String() string {
	if r.p == nil || len(*r.p) == 0 {
		return ""
	}
	names := make([]string, 0, len(*r.p))
	for n := range *r.p {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + (*r.p)[n].String()
	}
	return strings.Join(parts, ",")
}

func (r *ratesValue) Set(s string) error {
	var pairs []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pairs = append(pairs, p)
		}
	}
	rates, err := queue.ParseRates(pairs)
	if err != nil {
		return err
	}
	if !r.set || *r.p == nil {
		*r.p = map[string]queue.Rate{} // the first value replaces the default
		r.set = true
	}
	for n, rate := range rates {
		(*r.p)[n] = rate
	}
	return nil
}

func (r *ratesValue) Type() string { return "rates" }

// durationValue is a flag holding a duration, written as a Go duration ("90s", "24h") or a
// number of seconds. seconds makes its default print as seconds.
type durationValue struct {
	p       *time.Duration
	seconds bool
}

func (d *durationValue) String() string {
	if d.p == nil {
		return ""
	}
	if d.seconds {
		return strconv.FormatFloat(d.p.Seconds(), 'f', -1, 64)
	}
	return shortDuration(*d.p)
}

func (d *durationValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > (1<<62)/float64(time.Second) {
			return errors.New("out of range")
		}
		*d.p = time.Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 90s or 24h, or a number of seconds")
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	*d.p = v
	return nil
}

func (d *durationValue) Type() string { return "duration" }

// shortDuration prints 24h0m0s as 24h and 1m30s as 1m30s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// bytesValue is a flag holding a size in bytes: 4194304, 4MiB, 4 MB.
type bytesValue struct{ p *int64 }

func (b *bytesValue) String() string {
	if b.p == nil {
		return ""
	}
	return strings.ReplaceAll(humanize.IBytes(uint64(*b.p)), " ", "")
}

func (b *bytesValue) Set(s string) error {
	n, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || n == 0 || n > 1<<40 {
		return fmt.Errorf("want a size in bytes such as 4194304 or 4MiB")
	}
	*b.p = int64(n)
	return nil
}

func (b *bytesValue) Type() string { return "size" }
