package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, httpFlags bool, args []string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	bindFlags(fs, &cfg, httpFlags)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	err := applyEnvAndFile(fs, func(k string) string { return env[k] })
	return cfg, err
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parse(t, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "127.0.0.1" || cfg.Port != 8005 || cfg.DB != "./.spool/spool.db" || cfg.MaxConcurrent != 10 ||
		cfg.MaxQueueSize != 10000 || cfg.DefaultTimeout != time.Hour || cfg.Retention != 168*time.Hour ||
		cfg.Workers != -1 || cfg.MaxBody != 4<<20 || !cfg.UI || cfg.WebhookRetryWindow != 24*time.Hour ||
		cfg.Insecure || cfg.AllowPrivateWebhooks || cfg.APIKey != "" {
		t.Fatalf("defaults = %+v", cfg)
	}
}

// flag > env > file > default, with the PraisonAI names read too (SPOOL_* first).
func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "spool.yaml")
	os.WriteFile(file, []byte(`# settings
port: 7000
host: 127.0.0.2
max_concurrent: 3
default-timeout: 10m
retention: 48h
allow-private-webhooks: true
max-body: 1MiB
ui: false
tokens: ~
`), 0o600)
	cfg, err := parse(t, true, []string{"--config", file, "--port", "9000"}, map[string]string{
		"SPOOL_PORT":                     "8000",
		"PRAISONAI_JOBS_HOST":            "127.0.0.3",
		"PRAISONAI_JOBS_MAX_CONCURRENT":  "4",
		"SPOOL_MAX_CONCURRENT":           "5",
		"PRAISONAI_JOBS_DEFAULT_TIMEOUT": "120",
		"PRAISONAI_JOBS_API_KEY":         "k",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"port: flag beats env and file", cfg.Port == 9000},
		{"host: PRAISONAI env beats file", cfg.Host == "127.0.0.3"},
		{"max-concurrent: SPOOL_ beats PRAISONAI_", cfg.MaxConcurrent == 5},
		{"default-timeout: env seconds", cfg.DefaultTimeout == 2*time.Minute},
		{"retention: file", cfg.Retention == 48*time.Hour},
		{"allow-private-webhooks: file", cfg.AllowPrivateWebhooks},
		{"max-body: file size", cfg.MaxBody == 1<<20},
		{"ui: file false", !cfg.UI},
		{"api-key: PRAISONAI env", cfg.APIKey == "k"},
		{"db: default", cfg.DB == "./.spool/spool.db"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: cfg = %+v", c.name, cfg)
		}
	}

	// SPOOL_CONFIG names the file when --config does not.
	cfg, err = parse(t, true, nil, map[string]string{"SPOOL_CONFIG": file})
	if err != nil || cfg.Port != 7000 || cfg.MaxConcurrent != 3 || cfg.DefaultTimeout != 10*time.Minute {
		t.Fatalf("SPOOL_CONFIG: %+v, %v", cfg, err)
	}
}

func TestConfigErrorsNameTheirSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := 0
	write := func(body string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("config%d.yaml", n))
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"SPOOL_PORT": "eighty"}, "$SPOOL_PORT"},
		{nil, map[string]string{"PRAISONAI_JOBS_DEFAULT_TIMEOUT": "forever"}, "$PRAISONAI_JOBS_DEFAULT_TIMEOUT"},
		{nil, map[string]string{"SPOOL_MAX_BODY": "lots"}, "$SPOOL_MAX_BODY"},
		{[]string{"--config", write("colour: blue\n")}, nil, `unknown setting "colour"`},
		{[]string{"--config", write("port: [1, 2]\n")}, nil, "want a single value"},
		{[]string{"--config", write("- a\n- b\n")}, nil, "want a mapping"},
		{[]string{"--config", write("port: x\n")}, nil, "port"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "reading config file"},
		{[]string{"--retention", "-5s"}, nil, "negative"},
	}
	for _, c := range cases {
		_, err := parse(t, true, c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want it to mention %q", c.args, c.env, err, c.want)
		}
	}
}

func TestWorkerHasNoHTTPFlags(t *testing.T) {
	t.Parallel()
	cmd := NewWorkerCmd()
	for _, name := range []string{"host", "port", "api-key", "tokens", "insecure", "max-body", "ui"} {
		if cmd.Flags().Lookup(name) != nil {
			t.Errorf("spool worker has --%s", name)
		}
	}
	for _, name := range []string{"db", "recipes", "max-concurrent", "workers", "webhook-secret", "config", "log-format"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("spool worker lacks --%s", name)
		}
	}
	srv := NewServerCmd()
	for _, s := range serverSettings {
		if srv.Flags().Lookup(s.flag) == nil {
			t.Errorf("spool server lacks --%s", s.flag)
		}
	}
	if f := srv.Flags().Lookup("default-timeout"); f.DefValue != "3600" {
		t.Errorf("--default-timeout default prints %q", f.DefValue)
	}
	if f := srv.Flags().Lookup("retention"); f.DefValue != "168h" {
		t.Errorf("--retention default prints %q", f.DefValue)
	}
	if f := srv.Flags().Lookup("max-body"); f.DefValue != "4.0MiB" {
		t.Errorf("--max-body default prints %q", f.DefValue)
	}
}

// The command applies env and file before starting: a non-loopback host from the
// environment without tokens is refused before anything is opened.
func TestServerCommandRefusesAnOpenPublicBind(t *testing.T) {
	cmd := NewServerCmd()
	dir := t.TempDir()
	t.Setenv("SPOOL_HOST", "0.0.0.0")
	cmd.SetArgs([]string{"--db", filepath.Join(dir, "x.db"), "--log-format", "json"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "0.0.0.0") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "x.db")); statErr == nil {
		t.Error("the database was created")
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := newLogger("json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "k", 1)
	if !strings.HasPrefix(buf.String(), "{") {
		t.Errorf("json log = %q", buf.String())
	}
	buf.Reset()
	l, _ = newLogger("", &buf) // not a terminal: JSON
	l.Info("hello")
	if !strings.HasPrefix(buf.String(), "{") {
		t.Errorf("auto log on a buffer = %q", buf.String())
	}
	if _, err := newLogger("xml", &buf); err == nil {
		t.Error("xml log format accepted")
	}
}

func TestRateFlags(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "spool.yaml")
	os.WriteFile(file, []byte("rate-workspace: \"team=100/1h, *=1000/1h:50\"\n"), 0o600)
	cfg, err := parse(t, false, []string{"--config", file, "--rate-agent", "summarize=60/1m:10", "--rate-agent", "scrape=10/s"},
		map[string]string{"SPOOL_RATE_AGENT": "ignored=1/1s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AgentRates) != 2 || cfg.AgentRates["summarize"].String() != "60/1m:10" || cfg.AgentRates["scrape"].String() != "10/1s" {
		t.Errorf("agent rates = %v", cfg.AgentRates)
	}
	if len(cfg.WorkspaceRates) != 2 || cfg.WorkspaceRates["team"].String() != "100/1h" || cfg.WorkspaceRates["*"].Burst != 50 {
		t.Errorf("workspace rates = %v", cfg.WorkspaceRates)
	}
	cfg, err = parse(t, false, nil, map[string]string{"SPOOL_RATE_AGENT": "llm=3/1m"})
	if err != nil || cfg.AgentRates["llm"].Limit != 3 || cfg.AgentRates["llm"].Per != time.Minute {
		t.Errorf("env rates = %v, %v", cfg.AgentRates, err)
	}
	for _, bad := range []string{"llm", "llm=60", "llm=0/1m", "llm=60/soon", "llm=60/1m:0", "=1/1s"} {
		if _, err := parse(t, false, []string{"--rate-agent", bad}, nil); err == nil {
			t.Errorf("--rate-agent %q accepted", bad)
		}
	}
}
