package recipe

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong in a recipe file.
type Problem struct {
	// Line is the line in the file, 0 when unknown.
	Line int `json:"line,omitempty"`
	// Path is the key path, such as runtime.job.timeout_sec or exec.command[0].
	Path string `json:"path,omitempty"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
}

// String formats the problem as "line N: path: reason".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// decoder maps a YAML node tree onto Go structs strictly: every key must name a field (by its
// yaml tag), every value must have the field's type, and ${...} is expanded in scalars.
// It records every problem it finds instead of stopping at the first one.
type decoder struct {
	lookup   func(string) (string, bool)
	problems []Problem
	// lines maps each decoded key path to its line, for problems found after decoding.
	lines map[string]int
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Line: line, Path: path, Reason: fmt.Sprintf(format, args...)})
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// decode stores node n into v (addressable), naming problems with path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, known := d.lines[path]; d.lines != nil && !known {
		d.lines[path] = n.Line
	}
	if isNull(n) {
		return // absent: keep the zero value
	}
	if v.Type() == rawMessageType {
		val, ok := d.generic(n, path)
		if !ok {
			return
		}
		b, err := json.Marshal(val)
		if err != nil {
			d.addf(n, path, "cannot be represented as JSON: %v", err)
			return
		}
		v.SetBytes(b)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.addf(n, path, "must be a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			kp := joinPath(path, key)
			if seen[key] {
				d.addf(k, kp, "duplicate key")
				continue
			}
			seen[key] = true
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, kp)
			m.SetMapIndex(reflect.ValueOf(key), elem)
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.addf(n, path, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.typedScalar(n, path, "!!bool", "true or false")
		if !ok {
			return
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.addf(n, path, "must be true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		s, ok := d.typedScalar(n, path, "!!int", "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.addf(n, path, "must be an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.typedScalar(n, path, "!!float", "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.addf(n, path, "must be a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic("recipe: cannot decode into " + v.Type().String())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kp := joinPath(path, key)
		idx, ok := fields[key]
		if !ok {
			d.addf(k, kp, "unknown key (want one of %s)", strings.Join(sortedKeys(fields), ", "))
			continue
		}
		if seen[key] {
			d.addf(k, kp, "duplicate key")
			continue
		}
		seen[key] = true
		if d.lines != nil {
			d.lines[kp] = k.Line
		}
		d.decode(val, v.Field(idx), kp)
	}
}

// scalar returns the expanded text of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.addf(n, path, "must be %s, got %s", want, describe(n))
		return "", false
	}
	s, err := expand(n.Value, d.lookup)
	if err != nil {
		d.addf(n, path, "%v", err)
		return "", false
	}
	return s, true
}

// typedScalar returns the text of a scalar that YAML typed as tag, or of a string holding
// ${...}, whose expansion is then parsed. A quoted "600" is a string, not an integer.
func (d *decoder) typedScalar(n *yaml.Node, path, tag, want string) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		t := n.ShortTag()
		if t == tag || (tag == "!!float" && t == "!!int") {
			return n.Value, true
		}
		if t == "!!str" && strings.Contains(n.Value, "${") {
			return d.scalar(n, path, want)
		}
	}
	d.addf(n, path, "must be %s, got %s", want, describe(n))
	return "", false
}

// generic converts a node to a JSON-ready value (for input_schema and schedule inputs).
func (d *decoder) generic(n *yaml.Node, path string) (any, bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			kp := joinPath(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				d.addf(k, kp, "keys must be strings")
				ok = false
				continue
			}
			if _, dup := m[k.Value]; dup {
				d.addf(k, kp, "duplicate key")
				ok = false
				continue
			}
			val, vok := d.generic(n.Content[i+1], kp)
			ok = ok && vok
			m[k.Value] = val
		}
		return m, ok
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		ok := true
		for i, item := range n.Content {
			val, vok := d.generic(item, fmt.Sprintf("%s[%d]", path, i))
			ok = ok && vok
			s[i] = val
		}
		return s, ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!bool":
			b, err := strconv.ParseBool(n.Value)
			if err != nil {
				d.addf(n, path, "bad boolean %q", n.Value)
				return nil, false
			}
			return b, true
		case "!!int", "!!float":
			var num any
			if err := yaml.Unmarshal([]byte(n.Value), &num); err != nil {
				d.addf(n, path, "bad number %q", n.Value)
				return nil, false
			}
			if f, isFloat := num.(float64); isFloat && (math.IsNaN(f) || math.IsInf(f, 0)) {
				d.addf(n, path, "%s is not a JSON number", n.Value)
				return nil, false
			}
			return num, true
		case "!!str":
			return d.scalar(n, path, "a string")
		default:
			d.addf(n, path, "unsupported YAML type %s", n.ShortTag())
			return nil, false
		}
	}
	d.addf(n, path, "unsupported YAML node")
	return nil, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's type for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", clip(n.Value))
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return n.ShortTag() + " " + clip(n.Value)
	}
	return "an unsupported node"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps yaml tag names to field indexes.
func structFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = i
	}
	return fields
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
