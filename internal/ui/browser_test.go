package ui_test

// Browser tests: a real spool server (internal/server, SQLite in a temp dir, the example
// recipes) and a real headless Chromium driven through chromedp. Without Chromium they
// skip, except under CI=true, where they fail.
//
// SPOOL_UI_SCREENSHOTS=DIR keeps the screenshots the tests take (else they go to a temp
// dir that is removed); SPOOL_CHROMIUM=PATH picks the browser binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/server"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The browser is shared by every test (each test gets its own tab) and started on first use.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserErr    error
	browserCancel = func() {}
)

func chromiumPath() string {
	if p := os.Getenv("SPOOL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		path := chromiumPath()
		if path == "" {
			browserErr = errors.New("no Chromium found (install Debian's chromium package, or set SPOOL_CHROMIUM)")
			return
		}
		dir, err := os.MkdirTemp("", "spool-ui-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(dir),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.Flag("headless", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.WindowSize(1360, 900),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		// The first Run starts the browser; it must not carry a timeout.
		if err := chromedp.Do(ctx); err != nil {
			cancelCtx()
			cancelAlloc()
			_ = os.RemoveAll(dir)
			browserErr = fmt.Errorf("starting %s: %w", path, err)
			return
		}
		browserCtx = ctx
		browserCancel = func() {
			cancelCtx()
			cancelAlloc()
			_ = os.RemoveAll(dir)
		}
	})
	if browserErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium under CI: %v", browserErr)
		}
		t.Skipf("skipping browser test: %v", browserErr)
	}
	return browserCtx
}

func stopBrowser() { browserCancel() }

// recipesDir is the repository's example recipes: echo, countdown, sleep, flaky, ...
func recipesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "recipes"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// payload is markup that would run script if the dashboard ever parsed data as HTML.
const payload = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`

// injectRecipe reports the payload through every channel a run has: output, log,
// progress, result, and (with {"fail": true}) its error.
var injectRecipe = &queue.Recipe{
	Name: "inject",
	Handler: queue.HandlerFunc(func(ctx context.Context, run *spool.Run) (any, error) {
		queue.Output(ctx, payload+"\n")
		queue.Log(ctx, payload+"\n")
		queue.ReportProgress(ctx, 50, payload)
		var in struct {
			Fail bool `json:"fail"`
		}
		_ = json.Unmarshal(run.Input, &in)
		if in.Fail {
			return nil, queue.Permanent(errors.New(payload))
		}
		return map[string]string{"html": payload}, nil
	}),
}

// firehoseLines is how many output lines the firehose recipe writes, at about 2,000 a second.
const firehoseLines = 6000

var firehoseRecipe = &queue.Recipe{
	Name: "firehose",
	Handler: queue.HandlerFunc(func(ctx context.Context, run *spool.Run) (any, error) {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < firehoseLines; i++ {
			queue.Output(ctx, fmt.Sprintf("line %d\n", i))
			if i%20 == 19 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-tick.C:
				}
			}
		}
		return map[string]int{"lines": firehoseLines}, nil
	}),
}

func startServer(t *testing.T, mod func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.DB = filepath.Join(t.TempDir(), "spool.db")
	cfg.Recipes = recipesDir(t)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ShutdownGrace = time.Second
	cfg.GoRecipes = []*queue.Recipe{injectRecipe, firehoseRecipe}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return srv
}

func submit(t *testing.T, srv *server.Server, req *spool.SubmitRequest) *spool.Run {
	t.Helper()
	run, _, err := srv.Engine().Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit %s: %v", req.Recipe, err)
	}
	return run
}

func waitRun(t *testing.T, srv *server.Server, id string) *spool.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := srv.Engine().Wait(ctx, id)
	if err != nil {
		now, _ := srv.Engine().Get(context.Background(), id)
		t.Fatalf("waiting for %s to finish: %v; the run: %+v", id, err, now)
	}
	return run
}

// tab is one browser tab on a server. It records what a user would count as broken:
// console errors, uncaught exceptions, failed requests and script dialogs.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string

	// diag, when set, adds the server's side to a failed wait.
	diag func() string

	mu       sync.Mutex
	problems []string
	urls     map[network.RequestID]string
	allowed  func(url string, status int) bool
}

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	b := browser(t)
	tb := &tab{t: t, base: base, urls: map[network.RequestID]string{}}
	ctx, cancel := chromedp.NewContext(b, chromedp.WithListener(tb.onEvent))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 45*time.Second)
	t.Cleanup(cancelTimeout)
	tb.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1360, 900)); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return tb
}

// allow accepts failed responses for which f returns true (a test that expects a 401).
func (tb *tab) allow(f func(url string, status int) bool) {
	tb.mu.Lock()
	tb.allowed = f
	tb.mu.Unlock()
}

func (tb *tab) problem(format string, args ...any) {
	tb.mu.Lock()
	tb.problems = append(tb.problems, fmt.Sprintf(format, args...))
	tb.mu.Unlock()
}

func (tb *tab) isAllowed(url string, status int) bool {
	// The schedules API arrives with the scheduling issue; until then the page says so.
	if strings.HasSuffix(url, "/api/v1/schedules") && status == 404 {
		return true
	}
	return tb.allowed != nil && tb.allowed(url, status)
}

// onEvent runs on the tab's event loop: it must be quick and must not call the browser.
func (tb *tab) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			tb.problem("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		tb.problem("uncaught exception: %s (%s:%d)", text, d.URL, d.LineNumber)
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level == cdplog.EntryLevelError {
			tb.mu.Lock()
			ok := e.Source == cdplog.EntrySourceNetwork && (tb.allowed != nil || strings.HasSuffix(e.URL, "/api/v1/schedules"))
			tb.mu.Unlock()
			if !ok {
				tb.problem("browser log (%s): %s %s", e.Source, e.Text, e.URL)
			}
		}
	case *network.EventRequestWillBeSent:
		tb.mu.Lock()
		tb.urls[ev.RequestID] = ev.Request.URL
		tb.mu.Unlock()
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			tb.mu.Lock()
			ok := tb.isAllowed(ev.Response.URL, int(ev.Response.Status))
			tb.mu.Unlock()
			if !ok {
				tb.problem("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
			}
		}
	case *network.EventLoadingFailed:
		if !ev.Canceled {
			tb.mu.Lock()
			url := tb.urls[ev.RequestID]
			tb.mu.Unlock()
			tb.problem("request failed: %s %s", url, ev.ErrorText)
		}
	case *page.EventJavascriptDialogOpening:
		tb.problem("a script opened a %s dialog: %q", ev.Type, ev.Message)
		go func() {
			_, _ = chromedp.Call(tb.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}()
	}
}

// clean fails the test if the page showed any problem so far.
func (tb *tab) clean() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Error(p)
	}
	tb.problems = nil
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base + path))
}

// wait polls a JavaScript condition until it is truthy, for up to d.
func (tb *tab) wait(what, expr string, d time.Duration) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(40*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ''`))
		tb.clean()
		extra := ""
		if tb.diag != nil {
			extra = "\nserver: " + tb.diag()
		}
		tb.t.Fatalf("waiting for %s (%s): %v%s\npage text:\n%s", what, expr, err, extra, body)
	}
}

func evalJS[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of the viewport (or with full, of the whole page) as NAME.png.
func (tb *tab) shot(dir, name string, full bool) {
	tb.t.Helper()
	// Let the last animation frame and transitions settle before the capture.
	tb.do(chromedp.Evaluate[chromedp.Void](`new Promise(r => setTimeout(r, 350))`, func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	capture := chromedp.CaptureScreenshot()
	if full {
		capture = chromedp.FullScreenshot(100)
	}
	buf, err := chromedp.Run(tb.ctx, capture)
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(buf, []byte("\x89PNG")) {
		tb.t.Fatalf("screenshot %s is not a PNG", name)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SPOOL_UI_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func (tb *tab) darkMode(on bool) {
	tb.t.Helper()
	value := "light"
	if on {
		value = "dark"
	}
	_, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: value}},
	})
	if err != nil {
		tb.t.Fatal(err)
	}
}

// seed fills a server with runs in every state, for the pages and their screenshots.
func seed(t *testing.T, srv *server.Server) (countdown, failed *spool.Run) {
	t.Helper()
	in := func(s string) json.RawMessage { return json.RawMessage(s) }
	zero := 0
	var done []string
	for i, who := range []string{"world", "queue", "agents", "spool"} {
		r := submit(t, srv, &spool.SubmitRequest{Recipe: "echo", Input: in(fmt.Sprintf(`{"hello":%q,"n":%d}`, who, i)), SessionID: "demo-session"})
		done = append(done, r.ID)
	}
	countdown = submit(t, srv, &spool.SubmitRequest{Recipe: "countdown", Input: in(`{"n":6,"delay":0.05}`)})
	done = append(done, countdown.ID)
	failed = submit(t, srv, &spool.SubmitRequest{Recipe: "flaky", Input: in(`{"fail_percent":100}`), MaxRetries: &zero})
	done = append(done, failed.ID)
	done = append(done, submit(t, srv, &spool.SubmitRequest{Recipe: "sleep", Input: in(`{"seconds":30}`), TimeoutSec: 1, Agent: "crawler"}).ID)
	cancelled := submit(t, srv, &spool.SubmitRequest{Recipe: "sleep", Input: in(`{"seconds":30}`), Workspace: "research"})
	high := spool.PriorityHigh
	submit(t, srv, &spool.SubmitRequest{Recipe: "sleep", Input: in(`{"seconds":30}`), Priority: &high, Agent: "crawler"})
	submit(t, srv, &spool.SubmitRequest{Recipe: "countdown", Input: in(`{"n":5}`), Delay: spool.Duration(time.Hour)})
	paused := submit(t, srv, &spool.SubmitRequest{Recipe: "echo", Input: in(`{"later":true}`), Delay: spool.Duration(time.Hour)})
	ctx := context.Background()
	if _, err := srv.Engine().Pause(ctx, paused.ID); err != nil {
		t.Fatalf("pause: %v", err)
	}
	for _, id := range done {
		waitRun(t, srv, id)
	}
	if _, err := srv.Engine().Cancel(ctx, cancelled.ID); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	waitRun(t, srv, cancelled.ID)
	return countdown, failed
}

// TestPages loads every page against a server holding runs in every state, checks that
// each shows its content with no console error and no failed request, and saves a
// screenshot of each (light, and the main ones dark).
func TestPages(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()
	countdown, failed := seed(t, srv)
	dir := screenshotDir(t)

	pages := []struct{ name, path, ready string }{
		{"overview", "/", `document.querySelectorAll('.tile').length >= 8 && document.querySelector('.chart-box rect.bar') && document.querySelector('.failures li')`},
		{"runs", "/runs", `document.querySelectorAll('.runs-table tbody tr').length >= 10`},
		{"run", "/runs/" + countdown.ID, `document.querySelector('.run-head .state-succeeded') && document.querySelectorAll('#pane-output .line').length >= 7 && document.querySelector('.timeline .ev-result')`},
		{"run-failed", "/runs/" + failed.ID, `document.querySelector('.error-panel .errcode') && document.querySelector('.timeline .ev-error')`},
		{"recipes", "/recipes", `document.querySelectorAll('.card').length >= 5`},
		{"recipe", "/recipes/countdown", `document.querySelector('form.submit-form input[name=n]')`},
		{"recipe-text", "/recipes/llm", `document.querySelector('.schema-form textarea[id$=-text]') && document.querySelector('.schema-form legend button').textContent === 'Edit as JSON'`},
		{"nodes", "/nodes", `document.querySelector('main table, main .empty')`},
		{"schedules", "/schedules", `document.querySelector('main .empty')`},
	}
	for _, p := range pages {
		tb.open(p.path)
		tb.wait(p.name+" page", p.ready, 10*time.Second)
		tb.shot(dir, p.name, p.name == "overview")
		tb.clean()
	}

	// The runs page filters by state through the URL.
	tb.open("/runs?status=failed")
	tb.wait("failed runs", `document.querySelectorAll('.runs-table tbody tr').length === 2 && [...document.querySelectorAll('.runs-table tbody .state-word')].every(e => e.textContent === 'failed')`, 10*time.Second)
	tb.clean()

	// Navigation inside the app does not reload the page.
	tb.do(chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	tb.do(chromedp.Click(chromedp.CSS(`.mainnav a[href="/recipes"]`)))
	tb.wait("recipes by link", `location.pathname === '/recipes' && window.__sameDocument && document.querySelector('.card')`, 10*time.Second)
	// Keyboard users start at the skip link, then the navigation.
	tb.open("/runs")
	tb.wait("runs", `document.querySelector('.runs-table')`, 10*time.Second)
	tb.do(chromedp.KeyEvent("\t"))
	if got := evalJS[string](tb, `document.activeElement.className`); got != "skip-link" {
		t.Errorf("the first Tab focuses %q, want the skip link", got)
	}
	tb.clean()

	tb.darkMode(true)
	for _, p := range []struct{ name, path, ready string }{pages[0], pages[2], pages[1]} {
		tb.open(p.path)
		tb.wait(p.name+" page (dark)", p.ready, 10*time.Second)
		tb.shot(dir, p.name+"-dark", false)
	}
	tb.clean()
	t.Logf("screenshots in %s", dir)

	// Filter by a state chip, then delete the failed runs in bulk.
	tb.darkMode(false)
	tb.open("/runs")
	tb.wait("runs", `document.querySelectorAll('.runs-table tbody tr').length >= 10`, 10*time.Second)
	tb.do(chromedp.Click(chromedp.ID("f-status-failed")))
	tb.wait("the failed runs only", `location.search === '?status=failed' && document.querySelectorAll('.runs-table tbody tr').length === 2 && document.activeElement.id === 'f-status-failed'`, 10*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`.runs-table thead input[type=checkbox]`)))
	tb.wait("the bulk bar", `!document.querySelector('.bulk').hidden && document.querySelector('.bulk-count').textContent === '2 selected'`, 5*time.Second)
	if evalJS[bool](tb, `[...document.querySelectorAll('.bulk button')].find(b => b.textContent === 'Cancel').disabled`) != true {
		t.Error("bulk cancel is enabled for finished runs")
	}
	tb.do(chromedp.Click(chromedp.CSS(`.bulk button.danger`)))
	tb.wait("the confirmation", `document.querySelector('#confirm-dialog').open`, 5*time.Second)
	tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
	tb.wait("the runs to go", `document.querySelector('.empty') && document.querySelector('.empty').textContent.includes('No runs match') && document.querySelector('.toast.ok')`, 10*time.Second)
	for _, id := range []string{failed.ID} {
		if _, err := srv.Engine().Get(context.Background(), id); !errors.Is(err, spool.ErrNotFound) {
			t.Errorf("run %s after the bulk delete: %v", id, err)
		}
	}
	tb.clean()
}

// TestSubmitFromRecipeForm submits echo from its form and lands on the run's page, which
// shows the result.
func TestSubmitFromRecipeForm(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()

	tb.open("/recipes/echo")
	tb.wait("the echo form", `document.querySelector('.schema-form textarea')`, 10*time.Second)
	tb.do(
		chromedp.SetValue(chromedp.CSS(".schema-form textarea"), `{"hello": "from the browser"}`),
		chromedp.SetValue(chromedp.ID("opt-session"), "browser-session"),
		chromedp.Click(chromedp.CSS(`form.submit-form button[type=submit]`)),
	)
	tb.wait("the new run's page", `location.pathname.startsWith('/runs/run_')`, 10*time.Second)
	tb.wait("the result", `document.querySelector('.run-head .state-succeeded') && [...document.querySelectorAll('.panel h2')].some(h => h.textContent === 'Result') && document.querySelector('.json').textContent.includes('from the browser')`, 15*time.Second)
	tb.wait("the output", `document.querySelector('#pane-output').textContent.includes('"hello":"from the browser"')`, 5*time.Second)

	id := strings.TrimPrefix(evalJS[string](tb, `location.pathname`), "/runs/")
	run, err := srv.Engine().Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Recipe != "echo" || run.SessionID != "browser-session" || run.State != spool.StateSucceeded {
		t.Errorf("submitted run: recipe %q session %q state %q", run.Recipe, run.SessionID, run.State)
	}
	if string(run.Result) != `{"hello":"from the browser"}` {
		t.Errorf("result %s", run.Result)
	}

	// A schema form: countdown's integer fields, checked in the browser before submitting.
	tb.open("/recipes/countdown")
	tb.wait("the countdown form", `document.querySelector('input[name=n]')`, 10*time.Second)
	tb.do(
		chromedp.SetValue(chromedp.CSS("input[name=n]"), "2000"),
		chromedp.Click(chromedp.CSS(`form.submit-form button[type=submit]`)),
	)
	tb.wait("the field error", `document.querySelector('.field-error:not([hidden])') && location.pathname === '/recipes/countdown'`, 5*time.Second)
	tb.do(
		chromedp.SetValue(chromedp.CSS("input[name=n]"), "2"),
		chromedp.SetValue(chromedp.CSS("input[name=delay]"), "0.01"),
		chromedp.Click(chromedp.CSS(`form.submit-form button[type=submit]`)),
	)
	tb.wait("the countdown result", `location.pathname.startsWith('/runs/run_') && document.querySelector('.run-head .state-succeeded') && document.querySelector('.json') && document.querySelector('.json').textContent.includes('counted')`, 15*time.Second)
	tb.clean()
}

// TestLiveOutputAndProgress watches countdown's lines and progress bar arrive while it runs.
func TestLiveOutputAndProgress(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()
	run := submit(t, srv, &spool.SubmitRequest{Recipe: "countdown", Input: json.RawMessage(`{"n":8,"delay":0.3}`)})

	tb.open("/runs/" + run.ID)
	// Record every progress value and line count the page shows, as often as it renders.
	tb.do(chromedp.Evaluate[chromedp.Void](`
		window.__pcts = []; window.__lines = [];
		(function rec() {
			const p = document.querySelector('.progress');
			if (p) window.__pcts.push(Number(p.getAttribute('aria-valuenow')));
			window.__lines.push(document.querySelectorAll('#pane-output .line').length);
			requestAnimationFrame(rec);
		})();`))
	tb.wait("the run to finish on the page", `document.querySelector('.run-head .state-succeeded')`, 20*time.Second)
	tb.wait("the last line", `[...document.querySelectorAll('#pane-output .line')].map(l => l.textContent).join(',') === '8,7,6,5,4,3,2,1,liftoff'`, 5*time.Second)

	pcts := evalJS[[]float64](tb, `[...new Set(window.__pcts)]`)
	var between int
	for _, p := range pcts {
		if p > 0 && p < 100 {
			between++
		}
	}
	if between < 3 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress values seen %v: want at least 3 between 0 and 100, ending at 100", pcts)
	}
	lines := evalJS[[]int](tb, `[...new Set(window.__lines)]`)
	if len(lines) < 4 {
		t.Errorf("output line counts seen %v: want the lines to arrive a few at a time", lines)
	}
	if got := evalJS[string](tb, `document.querySelector('.progress-step') ? document.querySelector('.progress-step').textContent : ''`); got != "0 to go" {
		t.Errorf("current step %q, want %q", got, "0 to go")
	}
	tb.clean()
}

// TestOutputFirehose: a run writing thousands of lines a second keeps the page responsive
// and the output pane bounded.
func TestOutputFirehose(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()
	run := submit(t, srv, &spool.SubmitRequest{Recipe: "firehose"})

	tb.open("/runs/" + run.ID)
	// The longest pause of the page's main thread while the output streams in.
	tb.do(chromedp.Evaluate[chromedp.Void](`
		window.__maxGap = 0;
		let last = performance.now();
		setInterval(() => { const now = performance.now(); window.__maxGap = Math.max(window.__maxGap, now - last); last = now; }, 20);`))
	tb.wait("the last line", `document.querySelector('#pane-output .line:last-child') && document.querySelector('#pane-output .line:last-child').textContent === 'line `+fmt.Sprint(firehoseLines-1)+`'`, 30*time.Second)
	tb.wait("the end of the run", `document.querySelector('.run-head .state-succeeded')`, 10*time.Second)
	if n := evalJS[int](tb, `document.querySelectorAll('#pane-output .line').length`); n != 5000 {
		t.Errorf("%d lines in the DOM, want the last 5000", n)
	}
	if got := evalJS[string](tb, `document.querySelector('#pane-output .line').textContent`); got != "line 1000" {
		t.Errorf("first line kept %q, want %q", got, "line 1000")
	}
	if !evalJS[bool](tb, `document.querySelector('.out-note').textContent.includes('1,000 earlier lines')`) {
		t.Error("the pane does not say that earlier lines were dropped")
	}
	if gap := evalJS[float64](tb, `window.__maxGap`); gap > 1000 {
		t.Errorf("the page froze for %.0f ms while the output streamed", gap)
	}
	tb.clean()
}

// runProcesses lists the processes whose environment names the run (exec children get
// SPOOL_RUN_ID).
func runProcesses(id string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	want := []byte("SPOOL_RUN_ID=" + id + "\x00")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err == nil && bytes.Contains(env, want) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// TestCancelFromRunPage cancels a running sleep with the page's button.
func TestCancelFromRunPage(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()
	run := submit(t, srv, &spool.SubmitRequest{Recipe: "sleep", Input: json.RawMessage(`{"seconds":60}`)})

	tb.open("/runs/" + run.ID)
	tb.wait("the sleep to run", `document.querySelector('.run-head .state-running') && document.querySelector('#pane-output').textContent.includes('slept 1/60')`, 15*time.Second)
	if evalJS[bool](tb, `document.querySelector('[data-action=retry]').disabled && document.querySelector('[data-action=delete]').disabled && !document.querySelector('[data-action=cancel]').disabled`) != true {
		t.Error("a running run should offer cancel and not retry or delete")
	}
	if len(runProcesses(run.ID)) == 0 {
		t.Log("no process found for the run by its environment (is /proc readable?)")
	}
	tb.do(chromedp.Click(chromedp.CSS(`[data-action=cancel]`)))
	tb.wait("cancelled", `document.querySelector('.run-head .state-cancelled')`, 15*time.Second)
	tb.wait("the actions of a finished run", `!document.querySelector('[data-action=retry]').disabled && document.querySelector('[data-action=cancel]').disabled`, 5*time.Second)

	deadline := time.Now().Add(10 * time.Second)
	for left := runProcesses(run.ID); len(left) > 0; left = runProcesses(run.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the cancelled run are still alive: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := srv.Engine().Get(context.Background(), run.ID)
	if err != nil || got.State != spool.StateCancelled {
		t.Fatalf("run after cancel: %v %v", got.State, err)
	}

	// Retry lands on the new run, linked both ways.
	tb.do(chromedp.Click(chromedp.CSS(`[data-action=retry]`)))
	tb.wait("the retry's page", `location.pathname !== '/runs/`+run.ID+`' && document.querySelector('.chain a[href="/runs/`+run.ID+`"]')`, 10*time.Second)
	retryID := strings.TrimPrefix(evalJS[string](tb, `location.pathname`), "/runs/")
	tb.diag = func() string {
		r, err := srv.Engine().Get(context.Background(), retryID)
		evs, _ := srv.Engine().Events(context.Background(), retryID, 0, 0)
		var types []string
		for _, ev := range evs {
			types = append(types, string(ev.Type)+":"+string(ev.Status))
		}
		return fmt.Sprintf("retry %+v (err %v) events %v processes %v", r, err, types, runProcesses(retryID))
	}
	tb.wait("the retry to run", `document.querySelector('.run-head .state-running')`, 15*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-action=cancel]`)))
	tb.wait("the retry cancelled", `document.querySelector('.run-head .state-cancelled')`, 15*time.Second)
	tb.open("/runs/" + run.ID)
	tb.wait("the link to the retry", `document.querySelector('.chain a[href="/runs/`+retryID+`"]')`, 10*time.Second)

	// Pause and resume a delayed run.
	later := submit(t, srv, &spool.SubmitRequest{Recipe: "echo", Delay: spool.Duration(time.Hour)})
	tb.open("/runs/" + later.ID)
	tb.wait("the scheduled run", `document.querySelector('.run-head .state-scheduled') && document.querySelector('[data-action=resume]').disabled`, 10*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-action=pause]`)))
	tb.wait("paused", `document.querySelector('.run-head .state-paused') && !document.querySelector('[data-action=resume]').disabled && document.querySelector('[data-action=pause]').disabled`, 10*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-action=resume]`)))
	tb.wait("scheduled again", `document.querySelector('.run-head .state-scheduled')`, 10*time.Second)
	tb.clean()
}

// TestOutputIsText shows markup in a run's output, logs, progress, result and error as
// characters, and no script runs.
func TestOutputIsText(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, nil)
	tb.base = srv.URL()
	ok := submit(t, srv, &spool.SubmitRequest{Recipe: "inject", Input: json.RawMessage(`{"note":` + mustJSON(payload) + `}`)})
	bad := submit(t, srv, &spool.SubmitRequest{Recipe: "inject", Input: json.RawMessage(`{"fail":true}`)})
	waitRun(t, srv, ok.ID)
	waitRun(t, srv, bad.ID)

	js := mustJSON(payload)
	noMarkup := `document.querySelectorAll('main img, main script, main iframe').length === 0 && window.__pwned === undefined`

	tb.open("/runs/" + ok.ID)
	tb.wait("the payload as text in the output", `document.querySelector('#pane-output .line') && document.querySelector('#pane-output .line').textContent === `+js, 10*time.Second)
	tb.do(chromedp.Click(chromedp.ID("tab-logs")))
	tb.wait("the payload as text in the logs", `document.querySelector('#pane-logs .line') && document.querySelector('#pane-logs .line').textContent === `+js, 5*time.Second)
	tb.wait("the payload in the result", `document.querySelector('.j-str') && [...document.querySelectorAll('.j-str')].some(e => e.textContent === JSON.stringify(`+js+`))`, 5*time.Second)
	tb.wait("the payload as the current step", `document.querySelector('.progress-step') && document.querySelector('.progress-step').textContent === `+js, 5*time.Second)
	if !evalJS[bool](tb, noMarkup) {
		t.Error("the run's page turned output into elements or ran script")
	}

	tb.open("/runs/" + bad.ID)
	tb.wait("the payload as the error", `document.querySelector('.error-text') && document.querySelector('.error-text').textContent === `+js, 10*time.Second)
	if !evalJS[bool](tb, noMarkup) {
		t.Error("the failed run's page turned the error into elements or ran script")
	}
	tb.open("/")
	tb.wait("the payload in recent failures", `document.querySelector('.failure-text') && document.querySelector('.failure-text').textContent === `+js, 10*time.Second)
	if !evalJS[bool](tb, noMarkup) {
		t.Error("the overview turned the error into elements or ran script")
	}
	tb.clean()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestTokenPrompt: a server with a token asks for it before showing anything, says when
// a token is wrong, and keeps the right one for the tab.
func TestTokenPrompt(t *testing.T) {
	t.Parallel()
	tb := newTab(t, "")
	srv := startServer(t, func(c *server.Config) { c.APIKey = "s3cret-token" })
	tb.base = srv.URL()
	tb.allow(func(url string, status int) bool { return status == 401 && strings.Contains(url, "/api/v1/") })

	tb.open("/")
	tb.wait("the token dialog", `document.querySelector('#token-dialog').open && document.activeElement.id === 'token-input'`, 10*time.Second)
	if n := evalJS[int](tb, `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).length`); n != 0 {
		t.Errorf("%d API requests before the token was given", n)
	}
	tb.do(chromedp.SendKeys(chromedp.ID("token-input"), "wrong-token\n"))
	tb.wait("the dialog to say the token was refused", `document.querySelector('#token-dialog').open && !document.querySelector('#token-error').hidden && document.querySelector('#token-error').textContent.includes('not accepted')`, 10*time.Second)
	tb.do(chromedp.SendKeys(chromedp.ID("token-input"), "s3cret-token\n"))
	tb.wait("the overview", `!document.querySelector('#token-dialog').open && document.querySelectorAll('.tile').length >= 8`, 10*time.Second)
	if got := evalJS[string](tb, `sessionStorage.getItem('spool.token')`); got != "s3cret-token" {
		t.Errorf("session storage holds %q", got)
	}
	// Another page of the same tab needs no new prompt.
	tb.open("/runs")
	tb.wait("the runs page", `document.querySelector('.empty') && !document.querySelector('#token-dialog').open`, 10*time.Second)
	tb.clean()
}

// TestWorkspaceToken: a token limited to one workspace sees that workspace's runs only.
func TestWorkspaceToken(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	err := os.WriteFile(tokens, []byte("- token: admin-token\n- token: team-a-token\n  workspace: team-a\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, "")
	srv := startServer(t, func(c *server.Config) { c.TokensFile = tokens })
	tb.base = srv.URL()
	mine := submit(t, srv, &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`{"team":"a"}`), Workspace: "team-a"})
	theirs := submit(t, srv, &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`{"team":"b"}`), Workspace: "team-b"})
	waitRun(t, srv, mine.ID)
	waitRun(t, srv, theirs.ID)

	tb.open("/runs")
	tb.wait("the token dialog", `document.querySelector('#token-dialog').open`, 10*time.Second)
	tb.do(chromedp.SendKeys(chromedp.ID("token-input"), "team-a-token\n"))
	tb.wait("the runs of team-a", `document.querySelectorAll('.runs-table tbody tr').length === 1`, 10*time.Second)
	if got := evalJS[string](tb, `document.querySelector('.runs-table tbody tr').dataset.id`); got != mine.ID {
		t.Errorf("the only row is %q, want %q", got, mine.ID)
	}
	if evalJS[bool](tb, `document.body.textContent.includes('team-b') || document.body.textContent.includes(`+mustJSON(theirs.ID)+`)`) {
		t.Error("the page shows something of workspace team-b")
	}
	tb.open("/")
	tb.wait("the overview", `document.querySelectorAll('.tile-num').length >= 8`, 10*time.Second)
	if got := evalJS[string](tb, `[...document.querySelectorAll('a.tile')].pop().querySelector('.tile-num').textContent`); got != "1" {
		t.Errorf("total runs shown to team-a: %s, want 1", got)
	}
	tb.clean()

	// The other workspace's run is not found, as if it did not exist.
	tb.allow(func(url string, status int) bool { return status == 404 && strings.Contains(url, theirs.ID) })
	tb.open("/runs/" + theirs.ID)
	tb.wait("not found", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Run not found'`, 10*time.Second)
	tb.clean()
}
