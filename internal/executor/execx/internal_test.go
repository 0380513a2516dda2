package execx

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spool-run/spool"
)

func TestChildEnvDropsSpoolSecrets(t *testing.T) {
	t.Parallel()
	base := []string{
		"HOME=/home/u", "PATH=/usr/bin", "OPENAI_API_KEY=sk-user",
		"SPOOL_API_KEY=secret", "SPOOL_TOKEN=tok", "SPOOL_TOKENS_FILE=/etc/t.yaml",
		"SPOOL_WEBHOOK_SECRET=whsec_x", "SPOOL_DB=postgres://u:pw@db/spool",
		"PRAISONAI_JOBS_API_KEY=k", "SPOOL_RUN_ID=forged", "BROKEN",
	}
	run := &spool.Run{ID: "run_1", Recipe: "r", Agent: "a", Workspace: "w", SessionID: "s", Attempt: 3}
	env := childEnv(base, map[string]string{"EXTRA": "x", "HOME": "/override"}, run)
	want := []string{
		"EXTRA=x", "HOME=/override", "OPENAI_API_KEY=sk-user", "PATH=/usr/bin",
		"SPOOL_AGENT=a", "SPOOL_ATTEMPT=3", "SPOOL_RECIPE=r", "SPOOL_RUN_ID=run_1",
		"SPOOL_SESSION_ID=s", "SPOOL_WORKSPACE=w",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env =\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
}

func TestCompleteUTF8(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 3}, {"a\xc3", 1}, {"a\xc3\xa9", 3}, {"\xe2\x82", 0}, {"x\xe2\x82\xac", 4},
		{"\xf0\x9f\x98", 0}, {"\xf0\x9f\x98\x80", 4}, {"\xff", 1}, {"a\x80", 2},
	} {
		if got := completeUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("completeUTF8(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	t.Parallel()
	b := newTailBuffer(5)
	for _, s := range []string{"héllo", " wörld", "!"} {
		b.Write([]byte(s))
	}
	got, truncated := b.String()
	if !truncated || !utf8.ValidString(got) || !strings.HasSuffix("héllo wörld!", got) || len(got) > 5 {
		t.Errorf("String() = %q, %v", got, truncated)
	}
	small := newTailBuffer(100)
	small.Write([]byte("abc"))
	if got, truncated := small.String(); got != "abc" || truncated {
		t.Errorf("String() = %q, %v", got, truncated)
	}
}
