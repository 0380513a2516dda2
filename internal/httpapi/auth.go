package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/spool-run/spool"
)

// Token is one API token. A token with a Workspace sees and touches only that workspace's
// runs; one without may act on every workspace.
type Token struct {
	Token     string `yaml:"token"`
	Workspace string `yaml:"workspace"`
}

// Tokens is the set of accepted API tokens. Its zero value (or nil) accepts every request.
type Tokens struct {
	list []storedToken
}

type storedToken struct {
	hash      [sha256.Size]byte
	workspace string
}

// NewTokens returns a token set. Empty tokens are refused.
func NewTokens(tokens []Token) (*Tokens, error) {
	t := &Tokens{}
	for i, tok := range tokens {
		if strings.TrimSpace(tok.Token) == "" {
			return nil, fmt.Errorf("token %d is empty", i+1)
		}
		t.list = append(t.list, storedToken{hash: sha256.Sum256([]byte(tok.Token)), workspace: tok.Workspace})
	}
	return t, nil
}

// LoadTokens reads a YAML list of {token, workspace} from path.
func LoadTokens(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading tokens file: %w", err)
	}
	var tokens []Token
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&tokens); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("tokens file %s is empty", path)
		}
		return nil, fmt.Errorf("tokens file %s: %w (want a list of {token, workspace})", path, err)
	}
	for i, t := range tokens {
		if strings.TrimSpace(t.Token) == "" {
			return nil, fmt.Errorf("tokens file %s: entry %d has no token", path, i+1)
		}
	}
	return tokens, nil
}

// Enabled reports whether any token is configured (then every API call needs one).
func (t *Tokens) Enabled() bool { return t != nil && len(t.list) > 0 }

// lookup finds the token in the set. It compares against every token in constant time, so
// the answer's timing tells nothing about which token nearly matched.
func (t *Tokens) lookup(presented string) (workspace string, ok bool) {
	h := sha256.Sum256([]byte(presented))
	for _, st := range t.list {
		if subtle.ConstantTimeCompare(h[:], st.hash[:]) == 1 && !ok {
			workspace, ok = st.workspace, true
		}
	}
	return workspace, ok
}

// principal is who made a request: the workspace its token is limited to ("" = any).
type principal struct {
	workspace string
}

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// bearer returns the token a request presents: Authorization: Bearer T, or X-API-Key: T.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// authenticate checks the request's token when tokens are configured.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokens.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		tok := bearer(r)
		if tok == "" {
			WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeUnauthorized,
				"an API token is required: send Authorization: Bearer TOKEN or X-API-Key: TOKEN")))
			return
		}
		ws, ok := s.tokens.lookup(tok)
		if !ok {
			WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeUnauthorized, "the API token is not valid")))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{workspace: ws})))
	})
}

// scopeWorkspace applies the caller's workspace limit to a requested workspace: a limited
// caller gets its own workspace, and asking for another one is forbidden.
func scopeWorkspace(r *http.Request, requested, field string) (string, error) {
	p := principalFrom(r.Context())
	if p.workspace == "" {
		return requested, nil
	}
	if requested != "" && requested != p.workspace {
		return "", &spool.Error{Code: spool.CodeForbidden,
			Message: fmt.Sprintf("this token is limited to workspace %q", p.workspace),
			Fields:  []spool.FieldError{{Field: field, Reason: "not this token's workspace"}}}
	}
	return p.workspace, nil
}

// requireUnscoped refuses callers limited to one workspace (operator actions).
func requireUnscoped(r *http.Request) error {
	if ws := principalFrom(r.Context()).workspace; ws != "" {
		return spool.Errorf(spool.CodeForbidden, "this action needs a token for every workspace; this one is limited to %q", ws)
	}
	return nil
}
