package spool

import (
	"encoding/json"
	"time"
)

// EventType names the kind of an event in a run's stream.
type EventType string

// The event types.
const (
	EventOutput    EventType = "output"   // a chunk of the run's output
	EventLog       EventType = "log"      // a chunk of diagnostic text (exec: stderr)
	EventProgress  EventType = "progress" // a progress update
	EventStatus    EventType = "status"   // a state change
	EventResult    EventType = "result"   // the run succeeded; carries the result
	EventError     EventType = "error"    // the run failed; carries error and error_code
	EventCancelled EventType = "cancelled"
	EventHeartbeat EventType = "heartbeat" // SSE keep-alive, never stored
)

// IsTerminal reports whether an event of type t is the last of its run.
func (t EventType) IsTerminal() bool {
	return t == EventResult || t == EventError || t == EventCancelled
}

// Event is one item of a run's stream. Seq numbers start at 1 and grow by one per run.
type Event struct {
	RunID string    `json:"job_id"`
	Seq   int64     `json:"seq"`
	Type  EventType `json:"type"`
	Time  time.Time `json:"ts"`

	Text      string          `json:"text,omitempty"`
	Progress  *Progress       `json:"progress,omitempty"`
	Status    State           `json:"status,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	ErrorCode string          `json:"error_code,omitempty"`
	Attempt   int             `json:"attempt,omitempty"`
}
