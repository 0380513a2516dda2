package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/tableprinter"
	"github.com/spool-run/spool/internal/cli/text"
	"github.com/spool-run/spool/internal/recipe"
)

// NewCmdRecipe returns the `spool recipe` group.
func NewCmdRecipe(f *Factory) *cobra.Command {
	cmd := newGroup("recipe", "List, show, validate and run recipes")
	cmd.Aliases = []string{"recipes"}
	cmd.AddCommand(NewCmdRecipeList(f, nil), NewCmdRecipeShow(f, nil), NewCmdRecipeValidate(f, nil), NewCmdRecipeRun(f, nil))
	return cmd
}

// RecipeListOptions are the inputs of `spool recipe ls`.
type RecipeListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool
}

// NewCmdRecipeList returns `spool recipe ls`.
func NewCmdRecipeList(f *Factory, runF func(*RecipeListOptions) error) *cobra.Command {
	opts := &RecipeListOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the server's recipes",
		Long: `List the recipes the server can run, and the recipe files it could not load (on
standard error). Piped: name, kind, version, description, tab-separated.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return recipeListRun(cmd.Context(), opts)
		},
	}
}

func recipeListRun(ctx context.Context, opts *RecipeListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var list spool.RecipeList
	raw, err := apiCall(ctx, c, http.MethodGet, "/recipes", nil, &list)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	tty := ios.IsStdoutTTY()
	cs := ios.ColorScheme()
	tp := tableprinter.New(ios.Out, tty, ios.TerminalWidth())
	if tty {
		tp.AddHeader(cs.Bold, "NAME", "KIND", "VERSION", "DESCRIPTION")
	}
	for _, r := range list.Recipes {
		tp.AddField(r.Name, tableprinter.WithColor(cs.Cyan))
		tp.AddField(r.Kind)
		tp.AddField(orDash(r.Version))
		tp.AddField(r.Description, tableprinter.WithTruncate())
		tp.EndRow()
	}
	if len(list.Recipes) == 0 && tty {
		fmt.Fprintln(ios.Out, "No recipes. Add NAME.yaml or NAME/TEMPLATE.yaml files to the server's --recipes directory.")
	}
	if err := tp.Render(); err != nil {
		return err
	}
	ecs := ios.ErrColorScheme()
	for _, e := range list.Errors {
		fmt.Fprintf(ios.ErrOut, "%s %s: %s\n", ecs.WarningIcon(), e.File, text.OneLine(e.Message))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RecipeShowOptions are the inputs of `spool recipe show`.
type RecipeShowOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	Name string
}

// NewCmdRecipeShow returns `spool recipe show NAME`.
func NewCmdRecipeShow(f *Factory, runF func(*RecipeShowOptions) error) *cobra.Command {
	opts := &RecipeShowOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a recipe",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return recipeShowRun(cmd.Context(), opts)
		},
	}
}

func recipeShowRun(ctx context.Context, opts *RecipeShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	raw, err := apiCall(ctx, c, http.MethodGet, "/recipes/"+url.PathEscape(opts.Name), nil, &fields)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	d := &detailPrinter{ios: opts.IO}
	str := func(k string) string {
		var s string
		if json.Unmarshal(fields[k], &s) == nil {
			return s
		}
		return ""
	}
	d.add("Name", str("name"))
	d.add("Kind", str("kind"))
	if v := str("version"); v != "" {
		d.add("Version", v)
	}
	if v := str("description"); v != "" {
		d.add("Description", v)
	}
	// Every other field (defaults, runtime, exec, llm, input_schema, ...) as compact JSON.
	var keys []string
	for k := range fields {
		switch k {
		case "name", "kind", "version", "description":
			continue
		}
		if s := strings.TrimSpace(string(fields[k])); s == "" || s == "null" || s == "{}" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		title := strings.ToUpper(k[:1]) + strings.ReplaceAll(k[1:], "_", " ")
		d.add(title, resultText(fields[k], false))
	}
	d.render()
	return nil
}

// RecipeValidateOptions are the inputs of `spool recipe validate`.
type RecipeValidateOptions struct {
	IO     *iostreams.IOStreams
	Getenv func(string) string
	JSON   bool

	Paths []string
}

// NewCmdRecipeValidate returns `spool recipe validate [PATH...]`.
func NewCmdRecipeValidate(f *Factory, runF func(*RecipeValidateOptions) error) *cobra.Command {
	opts := &RecipeValidateOptions{IO: f.IOStreams, Getenv: f.Getenv}
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check recipe files without a server",
		Long: `Check recipe files and directories as the server would load them, without a server.
PATH is a recipe file, a recipe folder (holding TEMPLATE.yaml) or a recipe directory;
without PATH it is $SPOOL_RECIPES, else ./recipes. Each problem is printed with its file,
line and key. Exits with 1 when any file is invalid.`,
		Example: `  spool recipe validate
  spool recipe validate recipes/summarize/TEMPLATE.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return recipeValidateRun(opts)
		},
	}
}

func recipeValidateRun(opts *RecipeValidateOptions) error {
	paths := opts.Paths
	if len(paths) == 0 {
		dir := opts.Getenv("SPOOL_RECIPES")
		if dir == "" {
			dir = "recipes"
		}
		paths = []string{dir}
	}
	set := recipe.Validate(paths...)
	recipes, errs := set.List(), set.Errors()
	if opts.JSON {
		type item struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
			File string `json:"file"`
		}
		out := struct {
			OK      bool                `json:"ok"`
			Recipes []item              `json:"recipes"`
			Errors  []*recipe.FileError `json:"errors"`
		}{OK: len(errs) == 0, Recipes: []item{}, Errors: errs}
		for _, r := range recipes {
			out.Recipes = append(out.Recipes, item{r.Name, r.Kind, r.File})
		}
		if out.Errors == nil {
			out.Errors = []*recipe.FileError{}
		}
		if err := writeJSON(opts.IO, out); err != nil {
			return err
		}
	} else {
		ios := opts.IO
		cs := ios.ColorScheme()
		for _, r := range recipes {
			fmt.Fprintf(ios.Out, "%s %s: %s (%s)\n", cs.SuccessIcon(), r.File, r.Name, r.Kind)
		}
		ecs := ios.ErrColorScheme()
		for _, e := range errs {
			for _, line := range strings.Split(e.Error(), "\n") {
				fmt.Fprintf(ios.ErrOut, "%s %s\n", ecs.FailureIcon(), line)
			}
		}
		if len(recipes) == 0 && len(errs) == 0 {
			fmt.Fprintf(ios.ErrOut, "no recipe files found in %s\n", strings.Join(paths, ", "))
		}
	}
	switch {
	case len(errs) > 0:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d invalid recipe %s", len(errs), plural(int64(len(errs)), "file", "files"))}
	case len(recipes) == 0:
		return &ExitError{Code: ExitFailed}
	}
	return nil
}

// RecipeRunOptions are the inputs of `spool recipe run`.
type RecipeRunOptions struct {
	Submit     *SubmitOptions
	Background bool
}

// NewCmdRecipeRun returns `spool recipe run NAME`.
func NewCmdRecipeRun(f *Factory, runF func(*RecipeRunOptions) error) *cobra.Command {
	opts := &RecipeRunOptions{Submit: &SubmitOptions{IO: f.IOStreams, Client: f.Client}}
	so := opts.Submit
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a recipe and stream its output",
		Long: `Submit a run of recipe NAME and stream its output until it finishes; the command exits
with the run's outcome (0 succeeded, 1 failed or cancelled). With --background it only
submits the run and prints its id, as 'spool background submit' does.`,
		Example: `  spool recipe run countdown --input 3
  spool recipe run my-recipe --background --input '{"query": "test"}'`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			so.Recipe = args[0]
			so.JSON = f.JSON
			so.SetMaxRetries = cmd.Flags().Changed("max-retries")
			if runF != nil {
				return runF(opts)
			}
			if opts.Background {
				return submitBackground(cmd.Context(), so)
			}
			so.Follow = true
			return submitRun(cmd.Context(), so)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&so.Input, "input", "i", "", "Input: JSON, @FILE, or - for standard input")
	fl.StringVarP(&so.Config, "config", "c", "", "Config overrides as a JSON object")
	fl.StringVarP(&so.SessionID, "session-id", "s", "", "Session ID for conversation continuity")
	fl.IntVar(&so.Timeout, "timeout", 0, "Timeout in seconds (default: the recipe's, else the server's)")
	fl.StringVarP(&so.Priority, "priority", "p", "", "Priority: urgent, high, normal or low")
	fl.StringVarP(&so.Workspace, "workspace", "w", "", "Workspace (default: default)")
	fl.IntVar(&so.MaxRetries, "max-retries", 0, "Automatic retries after a retryable failure")
	fl.BoolVar(&opts.Background, "background", false, "Submit and return at once, printing the run's id")
	return cmd
}
