package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spool-run/spool"
)

// apiCall sends a request through the client and returns the answer verbatim (for --json)
// and, when typed is not nil, decoded into typed.
func apiCall(ctx context.Context, c *spool.Client, method, path string, body, typed any) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.Do(ctx, method, path, body, &raw); err != nil {
		return nil, err
	}
	if typed != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, typed); err != nil {
			return nil, fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// runPath is the API path of a run, plus a suffix such as "/cancel".
func runPath(id, suffix string) string {
	return "/runs/" + url.PathEscape(id) + suffix
}

// getRun fetches a run, verbatim and decoded.
func getRun(ctx context.Context, c *spool.Client, id string) (*spool.Run, json.RawMessage, error) {
	var run spool.Run
	raw, err := apiCall(ctx, c, http.MethodGet, runPath(id, ""), nil, &run)
	if err != nil {
		return nil, nil, err
	}
	return &run, raw, nil
}

// readJSONArg reads a JSON flag value: "@file" reads a file, "-" standard input, anything
// else is the value itself. Text that starts like JSON ({, [ or ") must be valid JSON;
// other text that is not JSON becomes a JSON string when asString is set, and is an error
// otherwise.
func readJSONArg(in io.Reader, flag, value string, asString bool) (json.RawMessage, error) {
	data := value
	switch {
	case value == "-":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("--%s: read standard input: %w", flag, err)
		}
		data = string(b)
	case strings.HasPrefix(value, "@"):
		b, err := os.ReadFile(value[1:])
		if err != nil {
			return nil, &FlagError{Err: fmt.Errorf("--%s: %w", flag, err)}
		}
		data = string(b)
	}
	trimmed := strings.TrimSpace(data)
	if json.Valid([]byte(trimmed)) && trimmed != "" {
		return json.RawMessage(trimmed), nil
	}
	if trimmed == "" || strings.ContainsAny(trimmed[:1], "{[\"") || !asString {
		var v any
		err := json.Unmarshal([]byte(trimmed), &v)
		if err == nil {
			err = fmt.Errorf("empty value")
		}
		return nil, flagErrorf("--%s must be JSON: %v", flag, err)
	}
	b, _ := json.Marshal(data)
	return b, nil
}
