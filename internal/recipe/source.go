package recipe

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spool-run/spool/recipes"
)

// DefaultDir is the recipe directory used when none is given and it exists.
const DefaultDir = "recipes"

// Resolve picks the recipe directory: dir if given (it must exist), else ./recipes if it is a
// directory, else the bundled example recipes, extracted to a cache directory so that their
// scripts can run. bundled reports the last case.
func Resolve(dir string) (path string, bundled bool, err error) {
	if dir != "" {
		if !isDir(dir) {
			return "", false, fmt.Errorf("recipe directory %s does not exist or is not a directory", dir)
		}
		return absPath(dir), false, nil
	}
	if isDir(DefaultDir) {
		return absPath(DefaultDir), false, nil
	}
	p, err := ExtractBundled()
	if err != nil {
		return "", false, err
	}
	return p, true, nil
}

// ExtractBundled writes the bundled example recipes to a directory and returns its path. The
// directory is named by the content's hash under the user's cache directory
// ($XDG_CACHE_HOME/spool/recipes/HASH), so it is written once per version and shared by the
// processes of one user; without a cache directory a new temporary directory is used.
func ExtractBundled() (string, error) {
	sum, err := bundleHash()
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		tmp, err := os.MkdirTemp("", "spool-recipes-")
		if err != nil {
			return "", fmt.Errorf("extract bundled recipes: %w", err)
		}
		return tmp, writeBundle(tmp)
	}
	parent := filepath.Join(cache, "spool", "recipes")
	final := filepath.Join(parent, sum)
	if isDir(final) {
		return final, nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("extract bundled recipes: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("extract bundled recipes: %w", err)
	}
	if err := writeBundle(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		if isDir(final) { // another process won the race with the same content
			return final, nil
		}
		return "", fmt.Errorf("extract bundled recipes: %w", err)
	}
	return final, nil
}

func writeBundle(dst string) error {
	err := fs.WalkDir(recipes.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := recipes.FS.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".py") {
			mode = 0o755
		}
		return os.WriteFile(target, data, mode)
	})
	if err != nil {
		return fmt.Errorf("extract bundled recipes: %w", err)
	}
	return nil
}

// bundleHash names the bundled content: a hash of every path and file.
func bundleHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(recipes.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := recipes.FS.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path.Clean(p), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash bundled recipes: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Source is a recipe directory whose recipes can be reloaded (on SIGHUP and
// POST /api/v1/recipes/reload). It is safe for concurrent use.
type Source struct {
	// Dir is the directory the recipes are loaded from.
	Dir string
	// Bundled is set when Dir holds the bundled examples.
	Bundled bool

	loader *Loader
	mu     sync.Mutex // serializes reloads
	set    atomic.Pointer[Set]
}

// Open resolves dir as [Resolve] does and loads it. A nil loader reads the process
// environment. Broken recipe files are not an error here: see [Set.Errors].
func Open(dir string, l *Loader) (*Source, error) {
	path, bundled, err := Resolve(dir)
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = &Loader{}
	}
	s := &Source{Dir: path, Bundled: bundled, loader: l}
	s.set.Store(l.Load(path))
	return s, nil
}

// Set returns the recipes loaded last.
func (s *Source) Set() *Set { return s.set.Load() }

// Reload loads the directory again and makes the result current. Runs already executing
// keep the handler they started with.
func (s *Source) Reload() *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.loader.Load(s.Dir)
	s.set.Store(set)
	return set
}
