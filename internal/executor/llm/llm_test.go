package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/executor/llm"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chunkJSON is one chat.completion.chunk as OpenAI streams it.
func chunkJSON(content string, finish string) string {
	fr := "null"
	if finish != "" {
		fr = `"` + finish + `"`
	}
	c, _ := json.Marshal(content)
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model-2024","choices":[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":%s}]}`, c, fr)
}

const usageChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model-2024","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`

// sse writes a stream of data: lines the way OpenAI does, flushing each event.
func sse(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for _, e := range events {
		fmt.Fprintf(w, "data: %s\n\n", e)
		w.(http.Flusher).Flush()
	}
}

type testBundle struct {
	srv      *httptest.Server
	requests atomic.Int32
	lastBody atomic.Pointer[map[string]any]
	lastAuth atomic.Pointer[string]
}

func setup(t *testing.T, handle func(b *testBundle, n int, w http.ResponseWriter, r *http.Request)) *testBundle {
	t.Helper()
	b := &testBundle{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(b.requests.Add(1))
		if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
			http.Error(w, "wrong endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		b.lastBody.Store(&body)
		auth := r.Header.Get("Authorization")
		b.lastAuth.Store(&auth)
		handle(b, n, w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBundle) config() llm.Config {
	return llm.Config{
		BaseURL:      b.srv.URL + "/v1/",
		Model:        "test-model",
		Client:       b.srv.Client(),
		RetryBackoff: 5 * time.Millisecond,
		LookupEnv: func(k string) (string, bool) {
			if k == "TEST_KEY" {
				return "sk-test", true
			}
			return "", false
		},
	}
}

func work(t *testing.T, ctx context.Context, cfg llm.Config, input string) (any, error, *queue.Recorder) {
	t.Helper()
	h, err := llm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, rec := queue.NewTestContext(ctx)
	res, err := h.Work(ctx, &spool.Run{ID: "run_1", Input: json.RawMessage(input)})
	return res, err, rec
}

func resultJSON(t *testing.T, res any) map[string]any {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestStreamsTokensInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, chunkJSON("", ""), chunkJSON("Hel", ""), chunkJSON("lo", ""), chunkJSON(" wörld", ""),
			chunkJSON("", "stop"), usageChunk, "[DONE]")
	})
	cfg := b.config()
	cfg.APIKeyEnv = "TEST_KEY"
	cfg.System = "Be brief."
	temp := 0.0
	cfg.Temperature = &temp
	cfg.MaxTokens = 50
	res, err, rec := work(t, t.Context(), cfg, `"Say hello"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Outputs(), []string{"Hel", "lo", " wörld"}; !reflect.DeepEqual(got, want) {
		t.Errorf("outputs = %q, want %q", got, want)
	}
	got := resultJSON(t, res)
	want := map[string]any{
		"output": "Hello wörld", "model": "test-model-2024", "finish_reason": "stop",
		"usage": map[string]any{"prompt_tokens": 12.0, "completion_tokens": 3.0, "total_tokens": 15.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result = %v, want %v", got, want)
	}

	body := *b.lastBody.Load()
	wantBody := map[string]any{
		"model": "test-model", "stream": true, "stream_options": map[string]any{"include_usage": true},
		"temperature": 0.0, "max_tokens": 50.0,
		"messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": "Say hello"},
		},
	}
	if !reflect.DeepEqual(body, wantBody) {
		t.Errorf("request body = %v, want %v", body, wantBody)
	}
	if auth := *b.lastAuth.Load(); auth != "Bearer sk-test" {
		t.Errorf("Authorization = %q", auth)
	}
}

func TestWireFormatVariants(t *testing.T) {
	t.Parallel()
	// data: without a space, comments, event and id lines, CRLF line ends, and chunks on
	// consecutive data lines without blank lines between them (some servers do that).
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		io.WriteString(w, ": keep-alive\r\n\r\nevent: message\r\nid: 1\r\ndata:"+chunkJSON("a", "")+"\r\n\r\n")
		io.WriteString(w, "data: "+chunkJSON("b", "")+"\ndata: "+chunkJSON("c", "length")+"\ndata: [DONE]\n")
	})
	res, err, rec := work(t, t.Context(), b.config(), `{"prompt": "go"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.Outputs(), "|"); got != "a|b|c" {
		t.Errorf("outputs = %q", got)
	}
	if got := resultJSON(t, res); got["finish_reason"] != "length" || got["usage"] != nil || got["output"] != "abc" {
		t.Errorf("result = %v", got)
	}
	if auth := *b.lastAuth.Load(); auth != "" {
		t.Errorf("Authorization = %q, want none without a key", auth)
	}
}

func TestPromptTemplateAndDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, chunkJSON("ok", "stop"), "[DONE]")
	})
	userMessage := func() string {
		msgs := (*b.lastBody.Load())["messages"].([]any)
		return msgs[len(msgs)-1].(map[string]any)["content"].(string)
	}
	for _, tc := range []struct{ name, prompt, input, want string }{
		{"template over object", "Summarize in {{or .max_words 100}} words{{with .style}} ({{.}}){{end}}:\n{{.text}}",
			`{"text": "long text", "style": "terse"}`, "Summarize in 100 words (terse):\nlong text"},
		{"template over string", "Q: {{.}}", `"why?"`, "Q: why?"},
		{"json func", "Data: {{json .}}", `{"a": [1, 2]}`, `Data: {"a":[1,2]}`},
		{"default string", "", `"plain question"`, "plain question"},
		{"default prompt field", "", `{"prompt": "from field", "x": 1}`, "from field"},
		{"default json", "", `{"x": 1}`, `{"x":1}`},
	} {
		cfg := b.config()
		cfg.Prompt = tc.prompt
		if _, err, _ := work(t, t.Context(), cfg, tc.input); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := userMessage(); got != tc.want {
			t.Errorf("%s: user message = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBadTemplateFailsAtNew(t *testing.T) {
	t.Parallel()
	if _, err := llm.New(llm.Config{Model: "m", Prompt: "{{.x"}); err == nil || !strings.Contains(err.Error(), "prompt") {
		t.Errorf("err = %v", err)
	}
	if _, err := llm.New(llm.Config{}); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("err = %v", err)
	}
}

func TestRetriesAfter429ThenSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		default:
			sse(w, chunkJSON("fine", "stop"), "[DONE]")
		}
	})
	res, err, rec := work(t, t.Context(), b.config(), `"hi"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultJSON(t, res)["output"]; got != "fine" {
		t.Errorf("output = %v", got)
	}
	if n := b.requests.Load(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	logs := strings.Join(rec.Logs(), "")
	if !strings.Contains(logs, "Rate limit reached") || !strings.Contains(logs, "502") {
		t.Errorf("retries are not logged with the server's reasons: %q", logs)
	}
}

func TestLongRetryAfterBacksOffTheAgent(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"slow down"}}`)
	})
	_, err, _ := work(t, t.Context(), b.config(), `"hi"`)
	var be *queue.BackoffError
	if !errors.As(err, &be) || be.After != 120*time.Second {
		t.Fatalf("err = %v, want a BackoffError of 120s", err)
	}
	if !strings.Contains(err.Error(), "slow down") {
		t.Errorf("err = %v, want the server's message", err)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("requests = %d: a long Retry-After must not be waited for in the run", n)
	}
}

func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	t.Run("503 with Retry-After backs off the agent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		cfg := b.config()
		cfg.MaxRetries = 2
		_, err, _ := work(t, t.Context(), cfg, `"hi"`)
		var be *queue.BackoffError
		if !errors.As(err, &be) {
			t.Fatalf("err = %v, want a BackoffError", err)
		}
		if n := b.requests.Load(); n != 3 {
			t.Errorf("requests = %d, want 3 (1 + 2 retries)", n)
		}
	})
	t.Run("500 stays retryable for the engine", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"message":"The server had an error"}}`)
		})
		cfg := b.config()
		cfg.MaxRetries = 1
		_, err, _ := work(t, t.Context(), cfg, `"hi"`)
		var be *queue.BackoffError
		if err == nil || errors.As(err, &be) || queue.IsPermanent(err) || !strings.Contains(err.Error(), "The server had an error") {
			t.Fatalf("err = %v, want a plain retryable error with the message", err)
		}
		if n := b.requests.Load(); n != 2 {
			t.Errorf("requests = %d, want 2", n)
		}
	})
}

func TestClientErrorsArePermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, "Incorrect API key provided"},
		{404, `{"error":{"message":"The model 'nope' does not exist"}}`, "does not exist"},
		{400, `{"error":"model is required"}`, "model is required"},
		{422, `{"detail":"bad field"}`, "bad field"},
	} {
		b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		})
		_, err, _ := work(t, t.Context(), b.config(), `"hi"`)
		if err == nil || !queue.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
			t.Errorf("%d: err = %v, want a permanent error with %q", tc.status, err, tc.want)
		}
		if n := b.requests.Load(); n != 1 {
			t.Errorf("%d: requests = %d, want no retry", tc.status, n)
		}
	}
}

func TestMidStreamDisconnectIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, chunkJSON("partial ", ""), chunkJSON("answ", ""))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, err, rec := work(t, t.Context(), b.config(), `"hi"`)
	if err == nil || queue.IsPermanent(err) || !strings.Contains(err.Error(), "[DONE]") {
		t.Fatalf("err = %v, want a retryable error about the cut stream", err)
	}
	if got := strings.Join(rec.Outputs(), ""); got != "partial answ" {
		t.Errorf("outputs before the cut = %q", got)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("requests = %d: a cut stream is not retried inside the run (tokens are out)", n)
	}
}

func TestErrorEventMidStream(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, chunkJSON("a", ""), `{"error":{"message":"model overloaded","type":"server_error"}}`)
	})
	_, err, _ := work(t, t.Context(), b.config(), `"hi"`)
	if err == nil || !strings.Contains(err.Error(), "model overloaded") {
		t.Fatalf("err = %v", err)
	}
}

func TestNonStreamingAnswerIsAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"m2","choices":[{"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"total_tokens":3}}`)
	})
	res, err, rec := work(t, t.Context(), b.config(), `"hi"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultJSON(t, res); got["output"] != "whole" || got["model"] != "m2" || got["usage"] == nil {
		t.Errorf("result = %v", got)
	}
	if got := rec.Outputs(); len(got) != 1 || got[0] != "whole" {
		t.Errorf("outputs = %q", got)
	}
}

func TestCancelClosesTheRequest(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, chunkJSON("first", ""))
		<-r.Context().Done() // the client went away
		close(closed)
	})
	ctx, cancel := context.WithCancel(t.Context())
	h, err := llm.New(b.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, rec := queue.NewTestContext(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := h.Work(ctx, &spool.Run{Input: json.RawMessage(`"hi"`)})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.Outputs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no token arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Work did not return after cancel")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the request end")
	}
}

func TestCancelWhileWaitingToRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "20")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	cfg := b.config()
	cfg.MaxRetryWait = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err, _ := work(t, ctx, cfg, `"hi"`)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > 5*time.Second {
		t.Errorf("err = %v after %s, want a prompt DeadlineExceeded", err, time.Since(began))
	}
}

func TestNoInputWithoutTemplateIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, func(b *testBundle, n int, w http.ResponseWriter, r *http.Request) {
		sse(w, "[DONE]")
	})
	_, err, _ := work(t, t.Context(), b.config(), `null`)
	if err == nil || !queue.IsPermanent(err) {
		t.Errorf("err = %v", err)
	}
	if n := b.requests.Load(); n != 0 {
		t.Errorf("requests = %d", n)
	}
}
