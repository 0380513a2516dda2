package recipe

import (
	"fmt"
	"strings"
)

// expand replaces ${VAR} and ${VAR:-default} in s with values from lookup. ${VAR} is empty
// when VAR is unset; ${VAR:-default} takes default when VAR is unset or empty, and default
// may itself hold ${...}. A bare $VAR is left as written and $${ writes a literal ${.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := matchingBrace(s, i+2)
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ at %q", clip(s[i:]))
			}
			v, err := substitute(s[i+2:end], lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// matchingBrace returns the index of the } closing a ${ whose body starts at from, or -1.
func matchingBrace(s string, from int) int {
	depth := 1
	for i := from; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// substitute evaluates the body of one ${...}: VAR or VAR:-default.
func substitute(body string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDefault := strings.Cut(body, ":-")
	if !validEnvName(name) {
		return "", fmt.Errorf("bad substitution ${%s}: want ${VAR} or ${VAR:-default}", clip(body))
	}
	v, ok := lookup(name)
	if hasDefault && (!ok || v == "") {
		return expand(def, lookup)
	}
	return v, nil
}

// validEnvName reports whether s is a shell variable name: a letter or _, then letters,
// digits or _.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
