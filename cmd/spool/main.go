// Command spool is Spool's single binary: the server (`spool server`, `spool worker`) and
// the client commands (`spool submit`, `spool ls`, ...). See docs/cli.md.
package main

import (
	"os"

	"github.com/spool-run/spool/internal/cli"
	"github.com/spool-run/spool/internal/server"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	v := version
	if v == "" {
		v = cli.Version()
	}
	os.Exit(cli.Main(v, cli.ServerCommands{Server: server.NewServerCmd, Worker: server.NewWorkerCmd}))
}
