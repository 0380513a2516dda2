package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/spool-run/spool"
)

var printer = message.NewPrinter(language.English)

// noLoader refuses every external $ref: a recipe's schema must be self-contained.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external $ref %s is not allowed; keep the schema in the recipe file", u)
}

// compileSchema compiles a recipe's input_schema. Formats (email, date-time, ...) are
// asserted, not just annotations.
func compileSchema(name string, raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	loc := "spool-recipe:///" + url.PathEscape(name) + "/input_schema.json"
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.AssertFormat()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), loc, "input_schema"))
	}
	return sch, nil
}

// validateInput checks input against r's schema and its runtime.job.enabled.
func validateInput(r *Recipe, input json.RawMessage) error {
	if !r.Enabled() {
		return spool.Errorf(spool.CodeUnprocessable, "recipe %s does not accept runs (runtime.job.enabled is false)", r.Name)
	}
	if r.schema == nil {
		return nil
	}
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("null")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return spool.Invalid("input", "not valid JSON: "+err.Error())
	}
	err = r.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return spool.Invalid("input", err.Error())
	}
	fields := schemaErrors(ve)
	reasons := make([]string, len(fields))
	for i, f := range fields {
		reasons[i] = f.Field + ": " + f.Reason
	}
	return &spool.Error{
		Code:    spool.CodeInvalid,
		Message: fmt.Sprintf("input does not match the input_schema of recipe %s: %s", r.Name, strings.Join(reasons, "; ")),
		Fields:  fields,
	}
}

// schemaErrors flattens a validation error to its leaves, one per failing location and
// reason, sorted by location.
func schemaErrors(ve *jsonschema.ValidationError) []spool.FieldError {
	var out []spool.FieldError
	seen := map[spool.FieldError]bool{}
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		f := spool.FieldError{Field: instancePath(e.InstanceLocation), Reason: e.ErrorKind.LocalizedString(printer)}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// instancePath names a location in the input: input, input.n, input.items[2].name.
func instancePath(loc []string) string {
	var b strings.Builder
	b.WriteString("input")
	for _, tok := range loc {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
		} else {
			b.WriteString("." + tok)
		}
	}
	return b.String()
}
