// Package recipes holds the example recipes bundled into the spool binary. The server runs
// them when it finds no ./recipes directory and is given no --recipes.
package recipes

import "embed"

// FS holds one folder per example recipe: its TEMPLATE.yaml and the scripts it runs.
//
//go:embed */*
var FS embed.FS
