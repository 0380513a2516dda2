package recipe

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOST": "example.com", "EMPTY": "", "PORT": "8080"}
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "${HOST}", want: "example.com"},
		{in: "http://${HOST}:${PORT}/x", want: "http://example.com:8080/x"},
		{in: "${MISSING}", want: ""},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${HOST:-fallback}", want: "example.com"},
		{in: "${MISSING:-}", want: ""},
		{in: "${MISSING:-${HOST}}", want: "example.com"},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$HOST stays", want: "$HOST stays"},
		{in: "$$HOST and $$ stay", want: "$$HOST and $$ stay"},
		{in: "$${HOST} is literal", want: "${HOST} is literal"},
		{in: "cost: $5", want: "cost: $5"},
		{in: "{{.x}} and ${HOST}", want: "{{.x}} and example.com"},
		{in: "${HOST", err: "unterminated"},
		{in: "${1BAD}", err: "bad substitution"},
		{in: "${}", err: "bad substitution"},
		{in: "${HOST:=x}", err: "bad substitution"},
	} {
		got, err := expand(tc.in, lookup)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expand(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
