//go:build !linux

package main

import "time"

// onTmpfs reports whether dir is on a tmpfs; only Linux is checked.
func onTmpfs(string) bool { return false }

// processCPU returns 0: the CPU time per run is measured on Linux only.
func processCPU() time.Duration { return 0 }
