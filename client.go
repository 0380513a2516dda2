package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is where a Spool server listens unless told otherwise.
const DefaultURL = "http://127.0.0.1:8005"

// apiPrefix is the path of the HTTP API under the server's base URL.
const apiPrefix = "/api/v1"

// Client talks to a Spool server over its HTTP API. It is safe for concurrent use.
//
// Calls that answer at once are bounded by the request timeout (see [WithRequestTimeout]);
// long-polls ([Job.Wait]) and streams ([Job.Events]) are bounded only by their context.
// Errors are an [*Error] when the server answered with a problem document (so
// errors.Is(err, ErrNotFound) works), a [*ConnectionError] when the server could not be
// reached, or the context's error.
type Client struct {
	base           string // scheme://host[:port][/prefix], no trailing slash
	baseErr        error
	token          string
	userAgent      string
	hc             *http.Client
	ownHTTP        bool
	requestTimeout time.Duration
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithToken sends token as "Authorization: Bearer <token>" on every request.
func WithToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// WithHTTPClient makes the client send its requests through hc instead of its own
// dedicated http.Client. hc should not set a Timeout, which would cut long-polls and streams.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
			c.ownHTTP = false
		}
	}
}

// WithRequestTimeout bounds each request that is neither a long-poll nor a stream.
// The default is 30 seconds; 0 leaves requests bounded only by their context.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.requestTimeout = d }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) ClientOption {
	return func(c *Client) { c.userAgent = ua }
}

// NewClient returns a client for the Spool server at serverURL, such as
// "http://127.0.0.1:8005" (a missing scheme means http; a trailing /api/v1 is ignored).
// An invalid URL is reported by the first call.
func NewClient(serverURL string, opts ...ClientOption) *Client {
	c := &Client{
		userAgent:      "spool-go",
		requestTimeout: 30 * time.Second,
		ownHTTP:        true,
		hc: &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          32,
				MaxIdleConnsPerHost:   16,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ExpectContinueTimeout: time.Second,
			},
		},
	}
	c.base, c.baseErr = normalizeBaseURL(serverURL)
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// normalizeBaseURL turns "host:port", "http://host:port/" or ".../api/v1" into scheme://host[/prefix].
func normalizeBaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultURL
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("spool: invalid server URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("spool: invalid server URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("spool: invalid server URL %q: no host", s)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), apiPrefix)
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	return u.String(), nil
}

// URL returns the server's base URL as the client uses it.
func (c *Client) URL() string { return c.base }

// Close releases the idle connections of the client's own http.Client. The client remains
// usable. It does nothing when the client was given an http.Client with [WithHTTPClient].
func (c *Client) Close() {
	if c.ownHTTP {
		c.hc.CloseIdleConnections()
	}
}

// ConnectionError reports that the server could not be reached, or that the connection
// broke before an answer arrived. Errors.Is matches its cause too.
type ConnectionError struct {
	// URL is the server's base URL.
	URL string
	// Err is the transport's error.
	Err error
}

// Error says which server could not be reached and why.
func (e *ConnectionError) Error() string {
	return "spool: cannot reach the server at " + e.URL + ": " + e.Err.Error()
}

// Unwrap returns the transport's error.
func (e *ConnectionError) Unwrap() error { return e.Err }

// request describes one API call.
type request struct {
	method string
	path   string // under /api/v1, starting with /
	query  url.Values
	body   any
	header http.Header
	// timeout bounds the whole call: 0 takes the client's request timeout, <0 none.
	timeout time.Duration
}

// send performs r and returns the response when its status is 2xx. Any other answer is
// decoded into an *Error. The caller closes the body and calls cancel.
func (c *Client) send(ctx context.Context, r request) (resp *http.Response, cancel context.CancelFunc, err error) {
	if c.baseErr != nil {
		return nil, nil, c.baseErr
	}
	timeout := r.timeout
	if timeout == 0 {
		timeout = c.requestTimeout
	}
	release := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, release = context.WithTimeout(ctx, timeout)
	}
	defer func() {
		if err != nil {
			release()
		}
	}()

	u := c.base + apiPrefix + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, nil, fmt.Errorf("spool: encode %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err = c.hc.Do(req)
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, nil, decodeProblem(resp)
	}
	return resp, release, nil
}

// transportError turns an error of the HTTP transport into the context's error (when the
// context ended) or a *ConnectionError.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("spool: %w", ctxErr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &ConnectionError{URL: c.base, Err: err}
}

// do performs r and decodes a JSON answer into out (nil discards it).
func (c *Client) do(ctx context.Context, r request, out any) (status int, err error) {
	resp, cancel, err := c.send(ctx, r)
	if err != nil {
		return 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, c.transportError(ctx, err)
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return 0, fmt.Errorf("spool: decode answer to %s %s: %w", r.method, r.path, err)
	}
	return resp.StatusCode, nil
}

// Do sends a request to the API path under /api/v1 (such as "/runs/run_01J.../webhooks"),
// with body encoded as JSON unless nil, and decodes the JSON answer into out unless nil;
// a *json.RawMessage receives the answer verbatim. It serves the endpoints that have no
// method of their own. Errors are those of every other method.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var query url.Values
	if i := strings.IndexByte(path, '?'); i >= 0 {
		q, err := url.ParseQuery(path[i+1:])
		if err != nil {
			return fmt.Errorf("spool: invalid query in %q: %w", path, err)
		}
		path, query = path[:i], q
	}
	_, err := c.do(ctx, request{method: method, path: path, query: query, body: body}, out)
	return err
}

// problem is an RFC 9457 problem document as the Spool server writes it.
type problem struct {
	Type       string       `json:"type"`
	Title      string       `json:"title"`
	Status     int          `json:"status"`
	Detail     string       `json:"detail"`
	Code       string       `json:"code"`
	Errors     []FieldError `json:"errors"`
	RetryAfter *float64     `json:"retry_after"`
	RunStatus  State        `json:"run_status"`
}

// decodeProblem builds the *Error for a non-2xx answer. An answer that is not a problem
// document (a proxy's error page, say) still gets a code, from its HTTP status.
func decodeProblem(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var p problem
	_ = json.Unmarshal(b, &p)
	e := &Error{Code: p.Code, Message: p.Detail, Fields: p.Errors, State: p.RunStatus}
	if e.Code == "" {
		e.Code = codeForStatus(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = p.Title
	}
	if e.Message == "" {
		text := strings.TrimSpace(string(b))
		if len(text) > 200 || strings.HasPrefix(text, "<") || strings.HasPrefix(text, "{") {
			text = ""
		}
		e.Message = resp.Status
		if text != "" {
			e.Message += ": " + text
		}
	}
	if p.RetryAfter != nil {
		e.RetryAfter = int(*p.RetryAfter + 0.999)
	} else if s := resp.Header.Get("Retry-After"); s != "" && (resp.StatusCode == 503 || resp.StatusCode == 429) {
		if n, err := strconv.Atoi(s); err == nil {
			e.RetryAfter = n
		}
	}
	return e
}

// codeForStatus maps an HTTP status to the error code the server would have sent.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllow
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnprocessableEntity:
		return CodeUnprocessable
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}

// runPath returns the API path of run id, plus an optional suffix such as "/cancel".
func runPath(id, suffix string) string {
	return "/runs/" + url.PathEscape(id) + suffix
}

// Submit submits a run and returns a handle on it. When req carries an idempotency key that
// matches an existing run, the handle is that run's and [Job.Existing] is true.
func (c *Client) Submit(ctx context.Context, req *SubmitRequest) (*Job, error) {
	if req == nil {
		return nil, errors.New("spool: Submit: nil request")
	}
	var run Run
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/runs", body: req}, &run)
	if err != nil {
		return nil, err
	}
	return c.jobFor(&run, status == http.StatusOK), nil
}

// SubmitMany submits runs in one request and one transaction: either all are accepted or
// none. The jobs come in the order of reqs.
func (c *Client) SubmitMany(ctx context.Context, reqs []*SubmitRequest) ([]*Job, error) {
	var out struct {
		Runs []*Run `json:"jobs"`
	}
	body := struct {
		Runs []*SubmitRequest `json:"runs"`
	}{reqs}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/runs/batch", body: body}, &out); err != nil {
		return nil, err
	}
	jobs := make([]*Job, len(out.Runs))
	for i, r := range out.Runs {
		jobs[i] = c.jobFor(r, false)
	}
	return jobs, nil
}

// Job returns a handle on the existing run id, without asking the server.
func (c *Client) Job(id string) *Job {
	return &Job{ID: id, c: c}
}

func (c *Client) jobFor(run *Run, existing bool) *Job {
	return &Job{ID: run.ID, Run: run, Existing: existing, c: c}
}

// Get returns the run id. An unknown id is an error matching [ErrNotFound].
func (c *Client) Get(ctx context.Context, id string) (*Run, error) {
	var run Run
	if _, err := c.do(ctx, request{method: http.MethodGet, path: runPath(id, "")}, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// List returns one page of runs, newest first, matching p's filters.
func (c *Client) List(ctx context.Context, p ListParams) (*RunList, error) {
	q := url.Values{}
	if len(p.States) > 0 {
		names := make([]string, len(p.States))
		for i, s := range p.States {
			names[i] = string(s)
		}
		q.Set("status", strings.Join(names, ","))
	}
	setIf := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	setIf("recipe_name", p.Recipe)
	setIf("agent", p.Agent)
	setIf("workspace", p.Workspace)
	setIf("session_id", p.SessionID)
	setIf("after", p.After)
	if p.Page > 0 {
		q.Set("page", strconv.Itoa(p.Page))
	}
	if p.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(p.PageSize))
	}
	var list RunList
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/runs", query: q}, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Cancel cancels run id and returns it. A queued, scheduled or paused run comes back
// cancelled; a running one comes back still running with CancelRequestedAt set, and ends
// cancelled shortly. Cancelling a run that has already finished has no effect and is not an
// error: Cancel returns the run as it is.
func (c *Client) Cancel(ctx context.Context, id string) (*Run, error) {
	var run Run
	_, err := c.do(ctx, request{method: http.MethodPost, path: runPath(id, "/cancel")}, &run)
	if err == nil {
		return &run, nil
	}
	var e *Error
	if errors.As(err, &e) && e.Code == CodeConflict {
		return c.Get(ctx, id)
	}
	return nil, err
}

// Retry submits a new run repeating the finished run id (its RetryOf is id) and returns a
// handle on it. Retrying an active run is an error matching [ErrConflict].
func (c *Client) Retry(ctx context.Context, id string) (*Job, error) {
	var run Run
	if _, err := c.do(ctx, request{method: http.MethodPost, path: runPath(id, "/retry")}, &run); err != nil {
		return nil, err
	}
	return c.jobFor(&run, false), nil
}

// Pause holds the queued or scheduled run id; it keeps its place until [Client.Resume].
func (c *Client) Pause(ctx context.Context, id string) (*Run, error) {
	var run Run
	if _, err := c.do(ctx, request{method: http.MethodPost, path: runPath(id, "/pause")}, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// Resume releases the paused run id back to its place in the queue.
func (c *Client) Resume(ctx context.Context, id string) (*Run, error) {
	var run Run
	if _, err := c.do(ctx, request{method: http.MethodPost, path: runPath(id, "/resume")}, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// Delete deletes the finished run id with its events. Deleting an active run is an error
// matching [ErrConflict].
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: runPath(id, "")}, nil)
	return err
}

// Clear deletes finished runs (older than p.OlderThan when set; with p.All active runs too,
// which are cancelled first) and returns how many it deleted. p.Workspace is not sent: a
// workspace-scoped token limits the clear to its workspace.
func (c *Client) Clear(ctx context.Context, p ClearParams) (int64, error) {
	body := struct {
		All       bool   `json:"all"`
		OlderThan string `json:"older_than,omitempty"`
	}{All: p.All}
	if p.OlderThan > 0 {
		body.OlderThan = p.OlderThan.String()
	}
	var out struct {
		Deleted int64 `json:"deleted"`
	}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/runs/clear", body: body}, &out); err != nil {
		return 0, err
	}
	return out.Deleted, nil
}

// Stats returns the queue's statistics.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/stats"}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// RecipeInfo describes a recipe the server can run.
type RecipeInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version,omitempty"`
	// Defaults are the recipe's run defaults (timeout_sec, max_retries, priority, ...).
	Defaults map[string]any `json:"defaults,omitempty"`
	// InputSchema is the JSON Schema a run's input must satisfy, if any.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// RecipeList is the server's recipes, and the recipe files it could not load.
type RecipeList struct {
	Recipes []*RecipeInfo     `json:"recipes"`
	Errors  []RecipeLoadError `json:"errors,omitempty"`
}

// RecipeLoadError names a recipe file the server could not load, and why.
type RecipeLoadError struct {
	File    string `json:"file"`
	Message string `json:"error"`
}

// Recipes lists the server's recipes.
func (c *Client) Recipes(ctx context.Context) (*RecipeList, error) {
	var list RecipeList
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/recipes"}, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Recipe returns the recipe called name. An unknown name is an error matching [ErrNotFound].
func (c *Client) Recipe(ctx context.Context, name string) (*RecipeInfo, error) {
	var r RecipeInfo
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/recipes/" + url.PathEscape(name)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Events returns the stored events of run id with a sequence number above afterSeq, oldest
// first. The server may return a bounded number at a time: call again with the last Seq.
func (c *Client) Events(ctx context.Context, id string, afterSeq int64) ([]*Event, error) {
	q := url.Values{}
	if afterSeq > 0 {
		q.Set("after", strconv.FormatInt(afterSeq, 10))
	}
	var out struct {
		Events []json.RawMessage `json:"events"`
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, path: runPath(id, "/events"), query: q}, &out); err != nil {
		return nil, err
	}
	evs := make([]*Event, 0, len(out.Events))
	for _, raw := range out.Events {
		ev := new(Event)
		if err := json.Unmarshal(raw, ev); err != nil {
			return nil, fmt.Errorf("spool: decode event of %s: %w", id, err)
		}
		ev.fixProgress(raw)
		evs = append(evs, ev)
	}
	return evs, nil
}

// RunResult is the outcome of a finished run, as GET /api/v1/runs/{id}/result answers.
type RunResult struct {
	ID    string `json:"job_id"`
	State State  `json:"status"`
	// Result is the run's result as JSON (null unless it succeeded).
	Result    json.RawMessage `json:"result"`
	Error     string          `json:"error"`
	ErrorCode string          `json:"error_code"`
	Metrics   ResultMetrics   `json:"metrics"`

	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	CompletedAt     *time.Time `json:"completed_at"`
	DurationSeconds *float64   `json:"duration_seconds"`
}

// ResultMetrics are the measurements of a finished run.
type ResultMetrics struct {
	Attempt         int      `json:"attempt"`
	WaitSeconds     float64  `json:"wait_seconds"`
	DurationSeconds *float64 `json:"duration_seconds"`
}

// Result returns the outcome of the finished run id. While the run is active it is an error
// matching [ErrConflict].
func (c *Client) Result(ctx context.Context, id string) (*RunResult, error) {
	var res RunResult
	if _, err := c.do(ctx, request{method: http.MethodGet, path: runPath(id, "/result")}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
