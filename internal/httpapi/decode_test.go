package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spool-run/spool"
)

// praisonBody is what PraisonAI's JobSubmitRequest.model_dump() sends: every field, with
// nulls and empty objects for the unset ones.
const praisonBody = `{"prompt": "Analyze this data", "agent_file": null, "agent_yaml": null,
 "recipe_name": "data-analyzer", "recipe_config": {"format": "json"}, "framework": null,
 "config": {}, "webhook_url": null, "timeout": 3600, "session_id": "session_123",
 "idempotency_key": null, "idempotency_scope": "none"}`

func TestDecodeSubmitAcceptsPraisonAIBodies(t *testing.T) {
	t.Parallel()
	req, err := decodeSubmit([]byte(praisonBody))
	if err != nil {
		t.Fatal(err)
	}
	if req.Recipe != "data-analyzer" || req.TimeoutSec != 3600 || req.SessionID != "session_123" ||
		req.IdempotencyScope != "none" || req.WebhookURL != "" {
		t.Errorf("req = %+v", req)
	}
	if string(req.Input) != `"Analyze this data"` {
		t.Errorf("input = %s, want the prompt as a JSON string", req.Input)
	}
	if string(req.Config) != `{"format":"json"}` {
		t.Errorf("config = %s, want recipe_config merged in", req.Config)
	}
}

func TestDecodeSubmitFields(t *testing.T) {
	t.Parallel()
	body := `{"recipe": "echo", "input": {"a": [1, 2]}, "prompt": "hi", "config": {"x": 1, "y": 1},
	  "recipe_config": {"y": 2}, "framework": "crewai", "priority": "HIGH", "agent": "ag", "workspace": "ws",
	  "session_id": "s", "timeout_sec": 90, "max_retries": 3, "webhook_url": "https://example.com/h",
	  "webhook_events": ["failed"], "idempotency_key": "k", "idempotency_scope": "session",
	  "metadata": {"team": "data"}, "delay": "90s"}`
	req, err := decodeSubmit([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if req.Recipe != "echo" || req.Agent != "ag" || req.Workspace != "ws" || req.SessionID != "s" ||
		req.TimeoutSec != 90 || *req.MaxRetries != 3 || *req.Priority != spool.PriorityHigh ||
		req.IdempotencyKey != "k" || req.IdempotencyScope != "session" || req.WebhookEvents[0] != "failed" ||
		time.Duration(req.Delay) != 90*time.Second {
		t.Errorf("req = %+v", req)
	}
	if string(req.Input) != `{"a": [1, 2]}` {
		t.Errorf("input = %s", req.Input)
	}
	var cfg map[string]int
	_ = json.Unmarshal(req.Config, &cfg)
	if cfg["x"] != 1 || cfg["y"] != 2 {
		t.Errorf("config = %s, want recipe_config's y to win", req.Config)
	}
	if req.Metadata["framework"] != "crewai" || req.Metadata["prompt"] != "hi" || req.Metadata["team"] != "data" {
		t.Errorf("metadata = %v", req.Metadata)
	}
}

func TestDecodeSubmitRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body, code, field string
	}{
		{``, spool.CodeInvalid, "body"},
		{`   `, spool.CodeInvalid, "body"},
		{`null`, spool.CodeInvalid, "body"},
		{`[]`, spool.CodeInvalid, "body"},
		{`"x"`, spool.CodeInvalid, "body"},
		{`{"recipe_name": "a"`, spool.CodeInvalid, "body"},
		{`{"recipe_name": "a"} {}`, spool.CodeInvalid, "body"},
		{`{"recipe_name": "a", "bogus": 1}`, spool.CodeInvalid, "bogus"},
		{`{"recipe_name": 5}`, spool.CodeInvalid, "recipe_name"},
		{`{"recipe_name": "a", "timeout": "60"}`, spool.CodeInvalid, "timeout"},
		{`{"recipe_name": "a", "timeout": 1.5}`, spool.CodeInvalid, "timeout"},
		{`{"recipe_name": "a", "timeout": 1e20}`, spool.CodeInvalid, "timeout"},
		{`{"recipe_name": "a", "max_retries": true}`, spool.CodeInvalid, "max_retries"},
		{`{"recipe_name": "a", "priority": "asap"}`, spool.CodeInvalid, "priority"},
		{`{"recipe_name": "a", "priority": 9}`, spool.CodeInvalid, "priority"},
		{`{"recipe_name": "a", "idempotency_scope": "world"}`, spool.CodeInvalid, "idempotency_scope"},
		{`{"recipe_name": "a", "config": [1]}`, spool.CodeInvalid, "config"},
		{`{"recipe_name": "a", "recipe_config": "x"}`, spool.CodeInvalid, "recipe_config"},
		{`{"recipe_name": "a", "metadata": 3}`, spool.CodeInvalid, "metadata"},
		{`{"recipe_name": "a", "webhook_events": "failed"}`, spool.CodeInvalid, "webhook_events"},
		{`{"recipe_name": "a", "run_at": "tomorrow"}`, spool.CodeInvalid, "run_at"},
		{`{"recipe_name": "a", "delay": "soon"}`, spool.CodeInvalid, "delay"},
		{`{"recipe_name": "a", "recipe": "b"}`, spool.CodeInvalid, "recipe"},
		{`{"recipe_name": "a", "timeout": 5, "timeout_sec": 6}`, spool.CodeInvalid, "timeout_sec"},
		{`{"recipe_name": "a", "prompt": ["x"]}`, spool.CodeInvalid, "prompt"},
		{`{"recipe_name": "a", "agent_file": "agents.yaml"}`, spool.CodeUnprocessable, "agent_file"},
		{`{"recipe_name": "a", "agent_yaml": "roles: {}"}`, spool.CodeUnprocessable, "agent_yaml"},
		{`{"recipe_name": "a", "agent_yaml": 7}`, spool.CodeInvalid, "agent_yaml"},
	}
	for _, c := range cases {
		_, err := decodeSubmit([]byte(c.body))
		var se *spool.Error
		if !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want an *spool.Error", c.body, err)
			continue
		}
		if se.Code != c.code {
			t.Errorf("%s: code = %s, want %s (%v)", c.body, se.Code, c.code, err)
		}
		if len(se.Fields) == 0 || se.Fields[0].Field != c.field {
			t.Errorf("%s: fields = %+v, want %s first", c.body, se.Fields, c.field)
		}
	}
}

func TestDecodeSubmitNamesEveryBadField(t *testing.T) {
	t.Parallel()
	_, err := decodeSubmit([]byte(`{"recipe_name": "a", "zz": 1, "aa": 2, "timeout": "x"}`))
	var se *spool.Error
	if !errors.As(err, &se) || len(se.Fields) != 3 {
		t.Fatalf("err = %#v, want three field errors", err)
	}
	got := []string{se.Fields[0].Field, se.Fields[1].Field, se.Fields[2].Field}
	if strings.Join(got, ",") != "aa,timeout,zz" {
		t.Errorf("fields = %v, want sorted aa, timeout, zz", got)
	}
	if !strings.Contains(se.Message, "and 2 more") {
		t.Errorf("message = %q", se.Message)
	}
}

func TestDecodeBatch(t *testing.T) {
	t.Parallel()
	reqs, err := decodeBatch([]byte(`{"runs": [{"recipe_name": "a"}, {"recipe": "b", "input": 1}]}`))
	if err != nil || len(reqs) != 2 || reqs[1].Recipe != "b" {
		t.Fatalf("reqs = %v, err = %v", reqs, err)
	}
	for body, field := range map[string]string{
		`{}`:            "runs",
		`{"runs": []}`:  "runs",
		`{"runs": {}}`:  "runs",
		`{"runs": [1]}`: "runs[0]",
		`{"runs": [{"recipe_name": "a"}, {"x": 1}]}`:      "runs[1].x",
		`{"runs": [{"recipe_name": "a"}], "extra": true}`: "extra",
	} {
		_, err := decodeBatch([]byte(body))
		var se *spool.Error
		if !errors.As(err, &se) || se.Code != spool.CodeInvalid || len(se.Fields) == 0 || se.Fields[0].Field != field {
			t.Errorf("%s: err = %v, want invalid naming %s", body, err, field)
		}
	}
	big := `{"runs": [` + strings.Repeat(`{"recipe_name": "a"},`, MaxBatch) + `{"recipe_name": "a"}]}`
	if _, err := decodeBatch([]byte(big)); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Errorf("a batch of %d: err = %v", MaxBatch+1, err)
	}
}

func TestDecodeClear(t *testing.T) {
	t.Parallel()
	cb, err := decodeClear(nil)
	if err != nil || cb.All || cb.OlderThan != 0 {
		t.Fatalf("empty body: %+v, %v", cb, err)
	}
	cb, err = decodeClear([]byte(`{"all": true, "older_than": "24h"}`))
	if err != nil || !cb.All || cb.OlderThan != 24*time.Hour {
		t.Fatalf("%+v, %v", cb, err)
	}
	cb, err = decodeClear([]byte(`{"older_than": 60}`))
	if err != nil || cb.OlderThan != time.Minute {
		t.Fatalf("%+v, %v", cb, err)
	}
	for _, body := range []string{`{"all": "yes"}`, `{"older_than": "-1h"}`, `{"older_than": "later"}`, `{"force": true}`, `[1]`} {
		if _, err := decodeClear([]byte(body)); spool.ErrorCode(err) != spool.CodeInvalid {
			t.Errorf("%s: err = %v, want invalid", body, err)
		}
	}
}

// FuzzDecodeSubmit: no input panics, and every refusal is an *spool.Error with a code the
// API maps to a 4xx status.
func FuzzDecodeSubmit(f *testing.F) {
	for _, seed := range []string{
		praisonBody,
		`{"recipe_name": "echo", "input": {"a": 1}}`,
		`{"recipe": "echo", "prompt": "hi", "priority": 3, "delay": 1.5}`,
		`{"recipe_name": "x", "run_at": "2030-01-02T03:04:05Z", "metadata": {"k": [null, true]}}`,
		`{"recipe_name": "x", "agent_file": "a.yaml"}`,
		`{"recipe_name": "x", "timeout": -1e308}`,
		`{"recipe_name": "x", "delay": 1e300}`,
		`{"recipe_name": "x", "config": {"a": {"b": {"c": [[[[]]]]}}}}`,
		`{"recipe_name": "\u0000", "workspace": "\ud800"}`,
		`{"runs": []}`,
		`{}`, `[]`, `null`, `{`, `{"a":}`, "\xff\xfe", ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSubmit(body)
		if err == nil {
			if req == nil {
				t.Fatal("nil request without an error")
			}
			if _, err := json.Marshal(req); err != nil {
				t.Fatalf("accepted request does not encode: %v", err)
			}
			return
		}
		var se *spool.Error
		if !errors.As(err, &se) {
			t.Fatalf("refusal %v is not an *spool.Error", err)
		}
		p := ProblemFor(err)
		if p.Code == "" || p.Status < 400 || p.Status > 499 || p.Detail == "" {
			t.Fatalf("refusal maps to problem %+v", p)
		}
		if se.Code == spool.CodeInvalid && len(se.Fields) == 0 {
			t.Fatalf("invalid refusal names no field: %v", err)
		}
	})
}
