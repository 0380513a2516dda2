//go:build !unix

package iostreams

import "os"

// terminalWidth is unknown on this platform; COLUMNS or 80 apply.
func terminalWidth(*os.File) int { return 0 }
