// Package spool is the Go SDK of Spool, a job server and queue for long-running AI-agent work.
//
// It holds the domain types ([Run], [State], [Priority], [Event], [Error]) and an HTTP client
// ([NewClient]) whose [Client.Submit] returns a [Job] handle. The embeddable engine lives in
// package queue; an in-process runner for Go functions lives in package background.
//
// This package imports only the standard library.
package spool
