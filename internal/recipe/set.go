package recipe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spool-run/spool/queue"
)

// TemplateFile is the file name of a recipe kept in its own folder (PraisonAI's layout).
const TemplateFile = "TEMPLATE.yaml"

// FileError reports a recipe file that did not load, with every problem found in it.
type FileError struct {
	// File is the path of the recipe file (or directory) that failed.
	File string
	// Recipe is the name the file's path gives it.
	Recipe   string
	Problems []Problem
}

// Error formats the problems one per line as "FILE:LINE: PATH: REASON".
func (e *FileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		loc := e.File
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d", e.File, p.Line)
		}
		msg := p.Reason
		if p.Path != "" {
			msg = p.Path + ": " + msg
		}
		lines[i] = loc + ": " + msg
	}
	return strings.Join(lines, "\n")
}

// MarshalJSON writes {file, recipe, error, problems}: error is the whole message.
func (e *FileError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		File     string    `json:"file"`
		Recipe   string    `json:"recipe,omitempty"`
		Error    string    `json:"error"`
		Problems []Problem `json:"problems"`
	}{e.File, e.Recipe, e.Error(), e.Problems})
}

// Set is the result of loading a recipe directory: the recipes that loaded and the files that
// did not. A broken file never hides the others.
type Set struct {
	// Dir is the directory the set was loaded from ("" for [Loader.Validate]).
	Dir     string
	recipes []*Recipe
	byName  map[string]*Recipe
	errs    []*FileError
}

// List returns the loaded recipes, sorted by name.
func (s *Set) List() []*Recipe { return append([]*Recipe(nil), s.recipes...) }

// Get returns the recipe called name.
func (s *Set) Get(name string) (*Recipe, bool) {
	r, ok := s.byName[name]
	return r, ok
}

// Names returns the names of the loaded recipes, sorted.
func (s *Set) Names() []string {
	names := make([]string, len(s.recipes))
	for i, r := range s.recipes {
		names[i] = r.Name
	}
	return names
}

// Errors returns the files that failed to load, sorted by file.
func (s *Set) Errors() []*FileError { return append([]*FileError(nil), s.errs...) }

// Err joins the load errors, or returns nil when every file loaded.
func (s *Set) Err() error {
	errs := make([]error, len(s.errs))
	for i, e := range s.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Recipes returns the engine's view of each loaded recipe: its handler and its defaults.
func (s *Set) Recipes() []*queue.Recipe {
	out := make([]*queue.Recipe, len(s.recipes))
	for i, r := range s.recipes {
		out[i] = r.queue
	}
	return out
}

// Loader loads recipe files. The zero value reads the process environment.
type Loader struct {
	// LookupEnv reads variables for ${...} and the llm API key; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// HTTPClient is used by llm recipes; nil is the llm executor's shared client.
	HTTPClient *http.Client
	// ExecOutputCap bounds the stdout kept as an exec result; 0 is the executor's default.
	ExecOutputCap int
}

func (l *Loader) lookupEnv() func(string) (string, bool) {
	if l.LookupEnv != nil {
		return l.LookupEnv
	}
	return os.LookupEnv
}

// Load loads every recipe in dir with the process environment. See [Loader.Load].
func Load(dir string) *Set { return (&Loader{}).Load(dir) }

// Load loads every recipe in dir: NAME/TEMPLATE.yaml (or TEMPLATE.yml) and NAME.yaml (or
// NAME.yml). Folders without a template and hidden entries are skipped. A file that fails is
// kept in [Set.Errors]; two files defining the same name both fail.
func (l *Loader) Load(dir string) *Set {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return newSet(dir, nil, []*FileError{{File: dir, Problems: []Problem{{Reason: "cannot read the recipe directory: " + err.Error()}}}})
	}
	var files []candidate
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		if isDir(path) {
			if t := templateIn(path); t != "" {
				files = append(files, candidate{path: t, name: name})
			}
			continue
		}
		if stem, ok := yamlStem(name); ok {
			files = append(files, candidate{path: path, name: stem})
		}
	}
	return l.loadAll(dir, files)
}

// Validate loads the given recipe files and directories as the server would: a file is one
// recipe, a folder holding a TEMPLATE.yaml is one recipe, any other directory is a recipe
// directory.
func (l *Loader) Validate(paths ...string) *Set {
	var files []candidate
	var sets []*Set
	seen := map[string]bool{}
	for _, p := range paths {
		if isDir(p) && templateIn(p) != "" {
			p = templateIn(p)
		}
		if seen[absPath(p)] {
			continue
		}
		seen[absPath(p)] = true
		if isDir(p) {
			sets = append(sets, l.Load(p))
		} else {
			files = append(files, candidate{path: p, name: nameFromFile(p)})
		}
	}
	set := l.loadAll("", files)
	for _, s := range sets {
		set.recipes = append(set.recipes, s.recipes...)
		set.errs = append(set.errs, s.errs...)
	}
	return newSet("", set.recipes, set.errs)
}

// Validate checks recipe files and directories with the process environment. See
// [Loader.Validate].
func Validate(paths ...string) *Set { return (&Loader{}).Validate(paths...) }

type candidate struct{ path, name string }

func (l *Loader) loadAll(dir string, files []candidate) *Set {
	var recipes []*Recipe
	var errs []*FileError
	for _, f := range files {
		r, ferr := l.loadFile(f.path, f.name)
		if ferr != nil {
			errs = append(errs, ferr)
			continue
		}
		recipes = append(recipes, r)
	}
	return newSet(dir, recipes, errs)
}

// newSet sorts, drops duplicate names (reporting every file that defines them) and indexes.
func newSet(dir string, recipes []*Recipe, errs []*FileError) *Set {
	files := map[string][]*Recipe{}
	for _, r := range recipes {
		files[r.Name] = append(files[r.Name], r)
	}
	s := &Set{Dir: dir, byName: map[string]*Recipe{}}
	for _, r := range recipes {
		dups := files[r.Name]
		if len(dups) == 1 {
			s.recipes = append(s.recipes, r)
			s.byName[r.Name] = r
			continue
		}
		var others []string
		for _, o := range dups {
			if o != r {
				others = append(others, o.File)
			}
		}
		errs = append(errs, &FileError{File: r.File, Recipe: r.Name, Problems: []Problem{{
			Path: "name", Reason: fmt.Sprintf("recipe %s is also defined in %s; neither is loaded", r.Name, strings.Join(others, ", ")),
		}}})
	}
	sort.Slice(s.recipes, func(i, j int) bool { return s.recipes[i].Name < s.recipes[j].Name })
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].File < errs[j].File })
	s.errs = errs
	return s
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// templateIn returns the path of the template file in dir, or "".
func templateIn(dir string) string {
	for _, n := range []string{TemplateFile, "TEMPLATE.yml"} {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

func yamlStem(name string) (string, bool) {
	for _, ext := range []string{".yaml", ".yml"} {
		if stem, ok := strings.CutSuffix(name, ext); ok && stem != "" {
			return stem, true
		}
	}
	return "", false
}

// nameFromFile is the name a file's path gives a recipe: its folder for a TEMPLATE file,
// else its name without the extension.
func nameFromFile(p string) string {
	base := filepath.Base(p)
	if strings.EqualFold(base, TemplateFile) || strings.EqualFold(base, "TEMPLATE.yml") {
		return filepath.Base(filepath.Dir(absPath(p)))
	}
	if stem, ok := yamlStem(base); ok {
		return stem
	}
	return base
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}
