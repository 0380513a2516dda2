package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// VersionOptions are the inputs of `spool version`.
type VersionOptions struct {
	IO      *iostreams.IOStreams
	Version string
	JSON    bool
}

// NewCmdVersion returns `spool version`.
func NewCmdVersion(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{IO: f.IOStreams, Version: f.Version}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
}

func versionRun(opts *VersionOptions) error {
	commit, dirty := "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if opts.JSON {
		return writeJSON(opts.IO, map[string]any{
			"version": opts.Version, "commit": commit, "dirty": dirty,
			"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
		})
	}
	line := "spool version " + opts.Version
	if commit != "" {
		if len(commit) > 12 {
			commit = commit[:12]
		}
		line += " (" + commit
		if dirty {
			line += ", modified"
		}
		line += ")"
	}
	_, err := fmt.Fprintf(opts.IO.Out, "%s %s/%s %s\n", line, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return err
}

// Version returns the module version the binary was built from, or "dev".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
