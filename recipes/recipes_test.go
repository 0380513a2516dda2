package recipes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/recipe"
	"github.com/spool-run/spool/queue"
	"github.com/spool-run/spool/recipes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var exampleNames = []string{"countdown", "echo", "flaky", "llm", "sleep", "summarize"}

// load loads the example recipes from this directory with a fixed environment.
func load(t *testing.T, env map[string]string) *recipe.Set {
	t.Helper()
	l := &recipe.Loader{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	set := l.Load(".")
	if err := set.Err(); err != nil {
		t.Fatalf("example recipes do not load:\n%v", err)
	}
	return set
}

func TestExamplesLoadAndValidate(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	if got := set.Names(); !reflect.DeepEqual(got, exampleNames) {
		t.Errorf("examples = %v, want %v", got, exampleNames)
	}
	for _, r := range set.List() {
		if r.Description == "" || r.Version == "" {
			t.Errorf("%s: no description or version", r.Name)
		}
		if r.Runtime.Job.TimeoutSec == 0 {
			t.Errorf("%s: no runtime.job.timeout_sec", r.Name)
		}
	}
	if set := recipe.Validate("."); set.Err() != nil || len(set.List()) != len(exampleNames) {
		t.Errorf("Validate: %v", set.Err())
	}
}

func TestEmbeddedFSHoldsEveryExample(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := os.ReadDir(e.Name())
		for _, f := range files {
			want := path.Join(e.Name(), f.Name())
			if _, err := fs.Stat(recipes.FS, want); err != nil {
				t.Errorf("%s is not embedded: %v", want, err)
			}
		}
	}
	if _, err := fs.Stat(recipes.FS, "embed.go"); err == nil {
		t.Error("embed.go is embedded")
	}
}

func TestExamplesValidateInputs(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	for _, tc := range []struct {
		recipe, input string
		ok            bool
	}{
		{"countdown", `{"n": 3, "delay": 0}`, true},
		{"countdown", `null`, true},
		{"countdown", `{"n": 0}`, false},
		{"countdown", `{"n": "five"}`, false},
		{"countdown", `{"m": 1}`, false},
		{"sleep", `{"seconds": 2}`, true},
		{"sleep", `{"seconds": -1}`, false},
		{"flaky", `{"succeed_on_attempt": 2}`, true},
		{"flaky", `{"fail_percent": 101}`, false},
		{"llm", `"a question"`, true},
		{"llm", `{"prompt": "a question"}`, true},
		{"llm", `""`, false},
		{"llm", `{"question": "x"}`, false},
		{"summarize", `{"text": "t", "max_words": 20, "style": "tweet"}`, true},
		{"summarize", `{"max_words": 20}`, false},
		{"echo", `[1, {"any": "thing"}]`, true},
	} {
		r, _ := set.Get(tc.recipe)
		err := r.ValidateInput(json.RawMessage(tc.input))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: err = %v, want ok=%v", tc.recipe, tc.input, err, tc.ok)
		}
		var se *spool.Error
		if err != nil && (!errors.As(err, &se) || se.Code != spool.CodeInvalid || len(se.Fields) == 0) {
			t.Errorf("%s %s: err = %#v, want *spool.Error invalid with fields", tc.recipe, tc.input, err)
		}
	}
}

// work runs one attempt of an example recipe through its handler.
func work(t *testing.T, ctx context.Context, set *recipe.Set, name, input string, attempt int) (any, error, *queue.Recorder) {
	t.Helper()
	r, ok := set.Get(name)
	if !ok {
		t.Fatalf("no recipe %s", name)
	}
	if err := r.ValidateInput(json.RawMessage(input)); err != nil {
		t.Fatalf("%s: input %s refused: %v", name, input, err)
	}
	ctx, rec := queue.NewTestContext(ctx)
	run := &spool.Run{ID: "run_ex", Recipe: name, Agent: name, Workspace: "default", Attempt: attempt, Input: json.RawMessage(input)}
	res, err := r.QueueRecipe().Handler.Work(ctx, run)
	return res, err, rec
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var anyv any
	json.Unmarshal(b, &anyv)
	b, _ = json.Marshal(anyv) // normalize spacing
	return string(b)
}

func TestEchoReturnsItsInput(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	for _, input := range []string{`{"hello": "world", "n": [1, 2.5, null]}`, `"just a string with $(danger)"`, `null`} {
		res, err, rec := work(t, t.Context(), set, "echo", input, 1)
		if err != nil {
			t.Fatal(err)
		}
		var want any
		json.Unmarshal([]byte(input), &want)
		wantJSON, _ := json.Marshal(want)
		if got := asJSON(t, res); got != string(wantJSON) {
			t.Errorf("result = %s, want %s", got, wantJSON)
		}
		var compact bytes.Buffer
		json.Compact(&compact, []byte(input))
		if out := strings.Join(rec.Outputs(), ""); out != compact.String()+"\n" {
			t.Errorf("output = %q, want the input as one line", out)
		}
	}
}

func TestCountdownStreamsWithProgress(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	res, err, rec := work(t, t.Context(), set, "countdown", `{"n": 4, "delay": 0}`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := asJSON(t, res); got != `{"counted":4}` {
		t.Errorf("result = %s", got)
	}
	if got := strings.Join(rec.Outputs(), ""); got != "4\n3\n2\n1\nliftoff\n" {
		t.Errorf("output = %q", got)
	}
	var pcts []float64
	var total, done int
	for _, u := range rec.Progress() {
		if u.Percentage != nil {
			pcts = append(pcts, *u.Percentage)
		}
		if u.StepsTotal != nil {
			total = *u.StepsTotal
		}
		if u.StepsCompleted != nil {
			done = *u.StepsCompleted
		}
	}
	if want := []float64{0, 25, 50, 75, 100}; !reflect.DeepEqual(pcts, want) || total != 4 || done != 4 {
		t.Errorf("progress = %v, steps %d/%d", pcts, done, total)
	}
	if logs := strings.Join(rec.Logs(), ""); logs != "" {
		t.Errorf("logs = %q", logs)
	}
}

func TestFlakyFailsRetryablyUntilItsAttempt(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	for attempt := 1; attempt <= 3; attempt++ {
		res, err, _ := work(t, t.Context(), set, "flaky", `{"succeed_on_attempt": 3}`, attempt)
		if attempt < 3 {
			if err == nil || queue.IsPermanent(err) || !strings.Contains(err.Error(), "75") || !strings.Contains(err.Error(), "temporary failure") {
				t.Errorf("attempt %d: err = %v, want a retryable exit 75", attempt, err)
			}
			continue
		}
		if err != nil || asJSON(t, res) != `{"attempt":3}` {
			t.Errorf("attempt 3: %v, %v", asJSON(t, res), err)
		}
	}
	if _, err, _ := work(t, t.Context(), set, "flaky", `{"fail_percent": 100}`, 1); err == nil {
		t.Error("fail_percent 100 succeeded")
	}
	if _, err, _ := work(t, t.Context(), set, "flaky", `{"fail_percent": 0}`, 1); err != nil {
		t.Errorf("fail_percent 0 failed: %v", err)
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	t.Parallel()
	set := load(t, nil)
	res, err, _ := work(t, t.Context(), set, "sleep", `{"seconds": 1}`, 1)
	if err != nil || asJSON(t, res) != `{"slept":1}` {
		t.Fatalf("sleep 1: %v, %v", res, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	r, _ := set.Get("sleep")
	rctx, rec := queue.NewTestContext(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := r.QueueRecipe().Handler.Work(rctx, &spool.Run{ID: "run_s", Input: json.RawMessage(`{"seconds": 600}`)})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.Progress()) == 0 { // steps_total arrives once the script runs
		if time.Now().After(deadline) {
			t.Fatal("sleep did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sleep did not stop")
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("stopping took %s; the script should exit on SIGTERM at once", d)
	}
	if logs := strings.Join(rec.Logs(), ""); !strings.Contains(logs, "stopped after") {
		t.Errorf("logs = %q: the script's TERM trap did not run", logs)
	}
}

func TestLLMExamplesAgainstACompatibleServer(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		lastBody map[string]any
		lastAuth string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		lastAuth = r.Header.Get("Authorization")
		lastBody = nil
		json.Unmarshal(body, &lastBody)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		for _, tok := range []string{"Qu", "eues ", "wait."} {
			fmt.Fprintf(w, "data: {\"model\":\"local-model\",\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", tok)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	set := load(t, map[string]string{"OPENAI_BASE_URL": srv.URL + "/v1", "OPENAI_API_KEY": "sk-local", "OPENAI_MODEL": "local-model"})

	res, err, rec := work(t, t.Context(), set, "llm", `"Write a haiku about queues"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := asJSON(t, res); got != `{"model":"local-model","output":"Queues wait.","usage":null}` {
		t.Errorf("result = %s", got)
	}
	if got := rec.Outputs(); !reflect.DeepEqual(got, []string{"Qu", "eues ", "wait."}) {
		t.Errorf("outputs = %q", got)
	}
	snapshot := func() (map[string]any, string) {
		mu.Lock()
		defer mu.Unlock()
		return lastBody, lastAuth
	}
	if body, auth := snapshot(); auth != "Bearer sk-local" || body["model"] != "local-model" {
		t.Errorf("request: auth %q, body %v", auth, body)
	}

	if _, err, _ := work(t, t.Context(), set, "summarize", `{"text": "A long text.", "max_words": 20, "style": "tweet"}`, 1); err != nil {
		t.Fatal(err)
	}
	body, _ := snapshot()
	msgs := body["messages"].([]any)
	user := msgs[len(msgs)-1].(map[string]any)["content"]
	if user != "Summarize the following text in at most 20 words, in a tweet style.\n\nA long text." {
		t.Errorf("summarize prompt = %q", user)
	}
	if body["temperature"] != 0.2 {
		t.Errorf("temperature = %v", body["temperature"])
	}
}
