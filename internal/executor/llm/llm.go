// Package llm runs llm recipes: one streamed call to an OpenAI-compatible chat-completions
// API (OpenAI, Ollama, vLLM, llama.cpp server, ...). Tokens become output events; the result
// is {"output": text, "usage": {...}, "model": ..., "finish_reason": ...}.
//
// It speaks the plain wire format over net/http (POST {base_url}/chat/completions with
// "stream": true, answered by Server-Sent Events) rather than through an SDK: the protocol is
// small and stable, every compatible server speaks exactly this subset, and Spool keeps
// control of retries, Retry-After and cancellation.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// Defaults of [Config].
const (
	DefaultBaseURL      = "https://api.openai.com/v1"
	DefaultAPIKeyEnv    = "OPENAI_API_KEY"
	DefaultMaxRetries   = 3
	DefaultRetryBackoff = time.Second
	DefaultMaxRetryWait = 30 * time.Second
)

// Config describes one llm recipe's call.
type Config struct {
	// BaseURL is the API's base URL; "" is $OPENAI_BASE_URL, else DefaultBaseURL.
	BaseURL string
	// Model is the model name (required).
	Model string
	// APIKeyEnv names the environment variable read for the API key at each run; ""
	// is DefaultAPIKeyEnv. An unset or empty key sends no Authorization header (local
	// servers need none).
	APIKeyEnv string
	// System is the system message; "" sends none.
	System string
	// Prompt is a text/template executed with the run's input decoded from JSON; "" uses the
	// input itself when it is a string, its "prompt" field when it is an object with a string
	// one, else its JSON text. The function json encodes a value as JSON.
	Prompt string
	// Temperature, when set, is sent as is.
	Temperature *float64
	// MaxTokens, when positive, is sent as max_tokens.
	MaxTokens int

	// Client makes the requests; nil uses a client shared by all llm recipes.
	Client *http.Client
	// MaxRetries is how many times an answer 429, 5xx or a failed connection is retried
	// within the run; 0 is DefaultMaxRetries, a negative value disables retries.
	MaxRetries int
	// RetryBackoff is the first wait between tries when the server gives no Retry-After;
	// it doubles each time, with jitter. 0 is DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxRetryWait is the longest Retry-After waited for within the run. A longer one, or
	// one still there when retries are exhausted, is handed to the engine as a
	// *queue.BackoffError so the whole agent backs off. 0 is DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// LookupEnv reads the environment; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// handler runs one llm recipe.
type handler struct {
	cfg    Config
	prompt *template.Template
	url    string
}

// defaultClient is shared by llm recipes. It has no overall timeout: a stream lasts as long
// as the run's timeout allows, and the run's context bounds it.
var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
	},
}

// New returns a handler for cfg. It fails if the model is missing or the prompt template
// does not parse.
func New(cfg Config) (queue.Handler, error) {
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("model is required")
	}
	if cfg.BaseURL == "" {
		if v, ok := cfg.LookupEnv("OPENAI_BASE_URL"); ok && v != "" {
			cfg.BaseURL = v
		} else {
			cfg.BaseURL = DefaultBaseURL
		}
	}
	if cfg.APIKeyEnv == "" {
		cfg.APIKeyEnv = DefaultAPIKeyEnv
	}
	if cfg.Client == nil {
		cfg.Client = defaultClient
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = DefaultMaxRetryWait
	}
	h := &handler{cfg: cfg, url: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions"}
	if cfg.Prompt != "" {
		t, err := ParsePrompt(cfg.Prompt)
		if err != nil {
			return nil, err
		}
		h.prompt = t
	}
	return h, nil
}

// ParsePrompt parses a prompt template as [New] does.
func ParsePrompt(text string) (*template.Template, error) {
	t, err := template.New("prompt").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	return t, nil
}

// Work makes the call, retrying as Config says, and streams the answer.
func (h *handler) Work(ctx context.Context, run *spool.Run) (any, error) {
	userText, err := h.render(run.Input)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	body, err := json.Marshal(h.request(userText))
	if err != nil {
		return nil, queue.Permanent(fmt.Errorf("llm: encode request: %w", err))
	}

	for try := 0; ; try++ {
		res, err := h.call(ctx, body)
		if err == nil {
			return res, nil
		}
		var re *retryableError
		if !errors.As(err, &re) || ctx.Err() != nil {
			return nil, err
		}
		retriesLeft := h.cfg.MaxRetries > 0 && try < h.cfg.MaxRetries
		wait := re.retryAfter
		if wait < 0 {
			wait = backoff(h.cfg.RetryBackoff, try)
		}
		if re.retryAfter >= 0 && re.backoffAgent && (!retriesLeft || wait > h.cfg.MaxRetryWait) {
			return nil, &queue.BackoffError{After: wait, Err: re.err}
		}
		if !retriesLeft {
			return nil, re.err
		}
		if wait > h.cfg.MaxRetryWait {
			wait = h.cfg.MaxRetryWait
		}
		queue.Log(ctx, fmt.Sprintf("llm: %v; retrying in %s\n", re.err, wait.Round(time.Millisecond)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("llm: %w (while waiting to retry after: %v)", context.Cause(ctx), re.err)
		case <-t.C:
		}
	}
}

// backoff is base * 2^try, plus up to 25% jitter, capped at one minute.
func backoff(base time.Duration, try int) time.Duration {
	d := base << min(try, 10)
	d = min(d, time.Minute)
	return d + rand.N(d/4+1)
}

// render builds the user message from the input.
func (h *handler) render(input json.RawMessage) (string, error) {
	var data any
	if len(bytes.TrimSpace(input)) > 0 {
		if err := json.Unmarshal(input, &data); err != nil {
			return "", fmt.Errorf("llm: input is not JSON: %w", err)
		}
	}
	if h.prompt == nil {
		switch v := data.(type) {
		case string:
			return v, nil
		case map[string]any:
			if p, ok := v["prompt"].(string); ok {
				return p, nil
			}
		case nil:
			return "", errors.New("llm: the run has no input to use as the prompt")
		}
		b, _ := json.Marshal(data)
		return string(b), nil
	}
	var b strings.Builder
	if err := h.prompt.Execute(&b, data); err != nil {
		return "", fmt.Errorf("llm: render prompt: %w", err)
	}
	return b.String(), nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []message      `json:"messages"`
	Stream        bool           `json:"stream"`
	StreamOptions map[string]any `json:"stream_options,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	MaxTokens     int            `json:"max_tokens,omitempty"`
}

func (h *handler) request(userText string) *chatRequest {
	req := &chatRequest{
		Model:         h.cfg.Model,
		Stream:        true,
		StreamOptions: map[string]any{"include_usage": true},
		Temperature:   h.cfg.Temperature,
		MaxTokens:     h.cfg.MaxTokens,
	}
	if h.cfg.System != "" {
		req.Messages = append(req.Messages, message{Role: "system", Content: h.cfg.System})
	}
	req.Messages = append(req.Messages, message{Role: "user", Content: userText})
	return req
}

// retryableError is a failure worth another try: 429, 5xx or a failed connection, before
// any token arrived.
type retryableError struct {
	err error
	// retryAfter is the server's Retry-After, or -1 if it gave none.
	retryAfter time.Duration
	// backoffAgent is set for 429 and 503: the provider asks every caller to wait.
	backoffAgent bool
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// call makes one request and streams its answer.
func (h *handler) call(ctx context.Context, body []byte) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, queue.Permanent(fmt.Errorf("llm: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if key, ok := h.cfg.LookupEnv(h.cfg.APIKeyEnv); ok && key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("llm: %w", context.Cause(ctx))
		}
		return nil, &retryableError{err: fmt.Errorf("llm: POST %s: %w", h.url, err), retryAfter: -1}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp)
	}
	return h.readStream(ctx, resp)
}

// statusError turns a non-2xx answer into an error carrying the server's message.
func statusError(resp *http.Response) error {
	b := make([]byte, 64<<10)
	n, _ := readFull(resp.Body, b)
	msg := errorMessage(b[:n])
	err := fmt.Errorf("llm: %s answered %s: %s", resp.Request.URL.Host, resp.Status, msg)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &retryableError{
			err:          queue.CodedError(spool.CodeRateLimited, err),
			retryAfter:   parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			backoffAgent: true,
		}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return &retryableError{err: err, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return queue.Permanent(err)
}

// errorMessage extracts the message of an OpenAI-style error body
// ({"error": {"message": ...}} or {"error": "..."}), else returns the body's text.
func errorMessage(b []byte) string {
	var body struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  string          `json:"detail"`
	}
	if json.Unmarshal(b, &body) == nil {
		var obj struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		}
		var s string
		switch {
		case json.Unmarshal(body.Error, &obj) == nil && obj.Message != "":
			return obj.Message
		case json.Unmarshal(body.Error, &s) == nil && s != "":
			return s
		case body.Message != "":
			return body.Message
		case body.Detail != "":
			return body.Detail
		}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; -1 means absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 && secs < 1e7 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}
