// Package cli is the spool command line: cobra commands built the gh way (an XxxOptions
// struct, a NewCmdXxx(f, runF) constructor and an xxxRun function per command), output
// through IOStreams that know whether they are a terminal, and exit codes that scripts can
// rely on (see docs/cli.md).
package cli

import (
	"os"
	"sync"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// Factory holds what commands need, built lazily so that a command that does not talk to
// the server never builds a client.
type Factory struct {
	IOStreams *iostreams.IOStreams
	// Client returns the API client for the --server and --token in force.
	Client func() (*spool.Client, error)
	// Now is the clock for relative times.
	Now func() time.Time
	// Getenv reads the environment (tests replace it).
	Getenv func(string) string
	// Version is the binary's version.
	Version string

	// Global flags, set when the command line is parsed.
	ServerURL string
	Token     string
	JSON      bool

	once   sync.Once
	client *spool.Client
}

// NewFactory returns a factory on ios whose client talks to f.ServerURL with f.Token.
func NewFactory(ios *iostreams.IOStreams, version string) *Factory {
	f := &Factory{IOStreams: ios, Now: time.Now, Getenv: os.Getenv, Version: version}
	f.Client = func() (*spool.Client, error) {
		f.once.Do(func() {
			var opts []spool.ClientOption
			if f.Token != "" {
				opts = append(opts, spool.WithToken(f.Token))
			}
			opts = append(opts, spool.WithUserAgent("spool-cli/"+version))
			f.client = spool.NewClient(f.serverURL(), opts...)
		})
		return f.client, nil
	}
	return f
}

// serverURL is --server, else SPOOL_URL, else the default.
func (f *Factory) serverURL() string {
	if f.ServerURL != "" {
		return f.ServerURL
	}
	return spool.DefaultURL
}

// Close releases the client's idle connections.
func (f *Factory) Close() {
	if f.client != nil {
		f.client.Close()
	}
}
