package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/spool-run/spool"
)

// MaxBatch is the largest number of runs one batch submit may carry.
const MaxBatch = 1000

// readBody reads a request body of at most limit bytes; a larger one is a too_large error.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, spool.Errorf(spool.CodeTooLarge, "the request body is larger than %d bytes (--max-body)", mbe.Limit)
		}
		return nil, spool.Errorf(spool.CodeInvalid, "reading the request body: %v", err)
	}
	return body, nil
}

// decodeObject parses body as one JSON object into its members. An empty body is an empty
// object when allowEmpty is set.
func decodeObject(body []byte, allowEmpty bool) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return map[string]json.RawMessage{}, nil
		}
		return nil, spool.Invalid("body", "a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, jsonError(err)
	}
	if m == nil {
		return nil, spool.Invalid("body", "must be a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, spool.Invalid("body", "unexpected data after the JSON object")
	}
	return m, nil
}

// jsonError turns a decoding error of the whole body into an invalid error.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return spool.Invalid("body", fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn))
	case errors.As(err, &typ):
		return spool.Invalid("body", "must be a JSON object, not a JSON "+typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return spool.Invalid("body", "malformed JSON: unexpected end of input")
	}
	return spool.Invalid("body", "malformed JSON: "+err.Error())
}

// fieldErrors collects the problems of one request body.
type fieldErrors struct {
	prefix        string
	invalid       []spool.FieldError
	unprocessable []spool.FieldError
}

func (fe *fieldErrors) add(field, reason string) {
	fe.invalid = append(fe.invalid, spool.FieldError{Field: fe.prefix + field, Reason: reason})
}

// err returns the collected problems as one error, or nil.
func (fe *fieldErrors) err() error {
	switch {
	case len(fe.unprocessable) > 0:
		all := append(append([]spool.FieldError{}, fe.unprocessable...), fe.invalid...)
		return &spool.Error{Code: spool.CodeUnprocessable, Fields: all, Message: fmt.Sprintf(
			"%s: an API caller cannot choose what to execute; submit a recipe_name from the server's recipes",
			fe.unprocessable[0].Field)}
	case len(fe.invalid) > 0:
		msg := fe.invalid[0].Field + ": " + fe.invalid[0].Reason
		if n := len(fe.invalid); n > 1 {
			msg += fmt.Sprintf(" (and %d more)", n-1)
		}
		return &spool.Error{Code: spool.CodeInvalid, Fields: fe.invalid, Message: msg}
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func (fe *fieldErrors) str(field string, raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		fe.add(field, "must be a string")
		return "", false
	}
	return s, true
}

func (fe *fieldErrors) integer(field string, raw json.RawMessage) (int, bool) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		fe.add(field, "must be a whole number")
		return 0, false
	}
	if math.Trunc(f) != f || math.Abs(f) > 1<<31 {
		fe.add(field, "must be a whole number")
		return 0, false
	}
	return int(f), true
}

func (fe *fieldErrors) boolean(field string, raw json.RawMessage) (bool, bool) {
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		fe.add(field, "must be true or false")
		return false, false
	}
	return b, true
}

func (fe *fieldErrors) object(field string, raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		fe.add(field, "must be a JSON object")
		return nil, false
	}
	return m, true
}

// sortedKeys returns m's keys in order, so errors come out in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeSubmit parses a submit body strictly: every field PraisonAI's clients send is
// accepted, null means absent, agent_file/agent_yaml are unprocessable, anything else
// unknown is invalid, and wrong types name their field.
func decodeSubmit(body []byte) (*spool.SubmitRequest, error) {
	m, err := decodeObject(body, false)
	if err != nil {
		return nil, err
	}
	fe := &fieldErrors{}
	req := submitFromMembers(m, fe)
	if err := fe.err(); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeBatch parses {"runs": [submit bodies]}.
func decodeBatch(body []byte) ([]*spool.SubmitRequest, error) {
	m, err := decodeObject(body, false)
	if err != nil {
		return nil, err
	}
	fe := &fieldErrors{}
	for _, k := range sortedKeys(m) {
		if k != "runs" {
			fe.add(k, "unknown field")
		}
	}
	raw, ok := m["runs"]
	if !ok || isNull(raw) {
		fe.add("runs", "is required: a list of submit bodies")
		return nil, fe.err()
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		fe.add("runs", "must be a list of JSON objects")
		return nil, fe.err()
	}
	switch {
	case len(items) == 0:
		fe.add("runs", "must hold at least one run")
	case len(items) > MaxBatch:
		fe.add("runs", fmt.Sprintf("holds %d runs; at most %d per batch", len(items), MaxBatch))
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	reqs := make([]*spool.SubmitRequest, len(items))
	for i, item := range items {
		fe.prefix = fmt.Sprintf("runs[%d].", i)
		var members map[string]json.RawMessage
		if err := json.Unmarshal(item, &members); err != nil || members == nil {
			fe.invalid = append(fe.invalid, spool.FieldError{Field: fmt.Sprintf("runs[%d]", i), Reason: "must be a JSON object"})
			continue
		}
		reqs[i] = submitFromMembers(members, fe)
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return reqs, nil
}

// submitFromMembers builds a submit request from a body's members, recording problems in fe.
func submitFromMembers(m map[string]json.RawMessage, fe *fieldErrors) *spool.SubmitRequest {
	req := &spool.SubmitRequest{}
	var (
		prompt                       *string
		recipeAlias, framework       string
		config, recipeConfig         map[string]json.RawMessage
		timeoutSet, haveTimeoutAlias bool
		timeoutAlias                 int
	)
	for _, k := range sortedKeys(m) {
		raw := m[k]
		if isNull(raw) {
			continue // PraisonAI's clients send every optional field, null when unset
		}
		switch k {
		case "recipe_name":
			req.Recipe, _ = fe.str(k, raw)
		case "recipe":
			recipeAlias, _ = fe.str(k, raw)
		case "input":
			req.Input = append(json.RawMessage(nil), bytes.TrimSpace(raw)...)
		case "prompt":
			if s, ok := fe.str(k, raw); ok {
				prompt = &s
			}
		case "config":
			config, _ = fe.object(k, raw)
		case "recipe_config":
			recipeConfig, _ = fe.object(k, raw)
		case "framework":
			framework, _ = fe.str(k, raw)
		case "priority":
			var p spool.Priority
			if err := p.UnmarshalJSON(raw); err != nil {
				fe.add(k, "must be one of urgent, high, normal, low")
			} else {
				req.Priority = &p
			}
		case "agent":
			req.Agent, _ = fe.str(k, raw)
		case "workspace":
			req.Workspace, _ = fe.str(k, raw)
		case "session_id":
			req.SessionID, _ = fe.str(k, raw)
		case "timeout":
			req.TimeoutSec, timeoutSet = fe.integer(k, raw)
		case "timeout_sec":
			timeoutAlias, haveTimeoutAlias = fe.integer(k, raw)
		case "max_retries":
			if n, ok := fe.integer(k, raw); ok {
				req.MaxRetries = &n
			}
		case "webhook_url":
			req.WebhookURL, _ = fe.str(k, raw)
		case "webhook_events":
			if err := json.Unmarshal(raw, &req.WebhookEvents); err != nil {
				fe.add(k, "must be a list of strings")
			}
		case "idempotency_key":
			req.IdempotencyKey, _ = fe.str(k, raw)
		case "idempotency_scope":
			if s, ok := fe.str(k, raw); ok {
				switch s {
				case spool.ScopeNone, spool.ScopeSession, spool.ScopeGlobal:
					req.IdempotencyScope = s
				default:
					fe.add(k, "must be one of none, session, global")
				}
			}
		case "metadata":
			if err := json.Unmarshal(raw, &req.Metadata); err != nil || req.Metadata == nil {
				fe.add(k, "must be a JSON object")
			}
		case "run_at":
			if s, ok := fe.str(k, raw); ok {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					fe.add(k, "must be an RFC 3339 time such as 2025-01-02T15:04:05Z")
				} else {
					req.RunAt = &t
				}
			}
		case "delay":
			if err := req.Delay.UnmarshalJSON(raw); err != nil {
				fe.add(k, `must be a duration such as "90s" or "5m", or a number of seconds`)
			}
		case "agent_file", "agent_yaml":
			if s, ok := fe.str(k, raw); ok && s != "" {
				fe.unprocessable = append(fe.unprocessable, spool.FieldError{Field: fe.prefix + k,
					Reason: "not accepted: an API caller cannot choose what to execute; use recipe_name"})
			}
		default:
			fe.add(k, "unknown field")
		}
	}
	if recipeAlias != "" {
		if req.Recipe != "" && req.Recipe != recipeAlias {
			fe.add("recipe", "differs from recipe_name; give one of them")
		}
		req.Recipe = recipeAlias
	}
	if haveTimeoutAlias {
		if timeoutSet && req.TimeoutSec != timeoutAlias {
			fe.add("timeout_sec", "differs from timeout; give one of them")
		}
		req.TimeoutSec = timeoutAlias
	}
	if prompt != nil {
		if req.Input == nil {
			req.Input, _ = json.Marshal(*prompt)
		} else {
			setMeta(req, "prompt", *prompt)
		}
	}
	if framework != "" {
		setMeta(req, "framework", framework)
	}
	if len(config) > 0 || len(recipeConfig) > 0 {
		merged := make(map[string]json.RawMessage, len(config)+len(recipeConfig))
		for k, v := range config {
			merged[k] = v
		}
		for k, v := range recipeConfig {
			merged[k] = v
		}
		req.Config, _ = json.Marshal(merged)
	}
	return req
}

func setMeta(req *spool.SubmitRequest, key string, v any) {
	if req.Metadata == nil {
		req.Metadata = map[string]any{}
	}
	req.Metadata[key] = v
}

// clearBody is the body of POST /api/v1/runs/clear.
type clearBody struct {
	All       bool
	OlderThan time.Duration
	Workspace string
}

func decodeClear(body []byte) (*clearBody, error) {
	m, err := decodeObject(body, true)
	if err != nil {
		return nil, err
	}
	fe := &fieldErrors{}
	out := &clearBody{}
	for _, k := range sortedKeys(m) {
		raw := m[k]
		if isNull(raw) {
			continue
		}
		switch k {
		case "all":
			out.All, _ = fe.boolean(k, raw)
		case "older_than":
			var d spool.Duration
			if err := d.UnmarshalJSON(raw); err != nil || d < 0 {
				fe.add(k, `must be a duration such as "24h", or a number of seconds`)
			}
			out.OlderThan = time.Duration(d)
		case "workspace":
			out.Workspace, _ = fe.str(k, raw)
		default:
			fe.add(k, "unknown field")
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return out, nil
}
