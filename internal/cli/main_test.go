package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/server"
)

// The tests run the commands against a real server on loopback (started in-process with a
// temporary SQLite database and the recipes in testdata/recipes): in-process through Run
// with test IOStreams, and as the built binary for exit codes and the seed's shell script.

var (
	// sharedURL is the server most tests share; they only add runs and read their own.
	sharedURL string
	// spoolBin is the spool binary built for this test run.
	spoolBin string
	// tmpRoot holds the binary and the databases.
	tmpRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	tmpRoot, err = os.MkdirTemp("", "spool-cli-test-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)

	spoolBin = filepath.Join(tmpRoot, "bin", "spool")
	build := exec.Command("go", "build", "-o", spoolBin, "github.com/spool-run/spool/cmd/spool")
	if out, err := build.CombinedOutput(); err != nil {
		log.Printf("building the spool binary: %v\n%s", err, out)
		return 1
	}

	srv, err := startServer(filepath.Join(tmpRoot, "shared.db"))
	if err != nil {
		log.Printf("starting the test server: %v", err)
		return 1
	}
	sharedURL = srv.URL()

	code := m.Run()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("stopping the test server: %v", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			log.Printf("goroutines left running: %v", err)
			code = 1
		}
	}
	return code
}

// startServer starts a Spool server on a free loopback port with the test recipes; opts
// adjust its configuration.
func startServer(db string, opts ...func(*server.Config)) (*server.Server, error) {
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.DB = db
	cfg.Recipes = "testdata/recipes"
	cfg.UI = false
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ShutdownGrace = time.Second
	for _, opt := range opts {
		opt(&cfg)
	}
	return server.Start(context.Background(), cfg)
}

// ownServer starts a server for one test, for commands that act on every run (clear).
func ownServer(t *testing.T, opts ...func(*server.Config)) string {
	t.Helper()
	srv, err := startServer(filepath.Join(t.TempDir(), "spool.db"), opts...)
	if err != nil {
		t.Fatalf("starting a server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
	})
	return srv.URL()
}

// result is what one command printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cliOpts configures an in-process run of the CLI.
type cliOpts struct {
	url     string // default sharedURL
	tty     bool   // stdout and stderr are terminals
	noColor bool
	stdin   string
	ctx     context.Context
	// later moves the CLI's clock ahead, so that relative times read "N minutes ago".
	later time.Duration
}

// runCmd runs the CLI in-process with piped (non-terminal) streams against the shared server.
func runCmd(t *testing.T, args ...string) result {
	t.Helper()
	return runCmdWith(t, cliOpts{}, args...)
}

// runCmdTTY runs the CLI in-process as if on a terminal.
func runCmdTTY(t *testing.T, args ...string) result {
	t.Helper()
	return runCmdWith(t, cliOpts{tty: true}, args...)
}

func runCmdWith(t *testing.T, o cliOpts, args ...string) result {
	t.Helper()
	ios, stdin, stdout, stderr := iostreams.Test()
	stdin.WriteString(o.stdin)
	ios.SetStdoutTTY(o.tty)
	ios.SetStderrTTY(o.tty)
	ios.SetNoColor(o.noColor)
	ios.SetTerminalWidth(120)
	code := runIn(t, o, ios, args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func runIn(t *testing.T, o cliOpts, ios *iostreams.IOStreams, args []string) int {
	url := o.url
	if url == "" {
		url = sharedURL
	}
	f := NewFactory(ios, "test")
	f.Now = func() time.Time { return time.Now().Add(o.later) }
	f.Getenv = func(k string) string {
		if k == "SPOOL_URL" {
			return url
		}
		return ""
	}
	ctx := o.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
	}
	return Run(ctx, f, ServerCommands{}, args)
}

// runBinary runs the built spool binary with env added to a minimal environment.
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, spoolBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmpRoot}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running spool %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustSucceed fails the test unless r exited 0.
func mustSucceed(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("command failed: %v", r)
	}
	return r
}

// submitID submits a run and returns its id.
func submitID(t *testing.T, url string, args ...string) string {
	t.Helper()
	r := mustSucceed(t, runCmdWith(t, cliOpts{url: url}, append([]string{"submit"}, args...)...))
	id := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(id, "run_") || strings.ContainsAny(id, " \t\n") {
		t.Fatalf("submit printed %q, want one run id", r.stdout)
	}
	return id
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
