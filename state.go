package spool

import (
	"encoding/json"
	"fmt"
	"strings"
)

// State is where a run is in its lifecycle.
type State string

// The run states. Terminal states are StateSucceeded, StateFailed and StateCancelled.
const (
	StateQueued    State = "queued"    // waiting for a free slot
	StateScheduled State = "scheduled" // waiting for its run_at time
	StateRunning   State = "running"   // executing on a node
	StatePaused    State = "paused"    // held; resume puts it back in its place
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// States lists every state, active ones first.
var States = []State{StateQueued, StateScheduled, StateRunning, StatePaused, StateSucceeded, StateFailed, StateCancelled}

// IsTerminal reports whether a run in state s will never change again.
func (s State) IsTerminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// IsActive reports whether a run in state s has not finished yet.
func (s State) IsActive() bool {
	return s.Valid() && !s.IsTerminal()
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateQueued, StateScheduled, StateRunning, StatePaused, StateSucceeded, StateFailed, StateCancelled:
		return true
	}
	return false
}

// ParseState parses a state name. It accepts the seed vocabulary too:
// "pending" is queued and "completed" is succeeded.
func ParseState(s string) (State, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pending":
		return StateQueued, nil
	case "completed":
		return StateSucceeded, nil
	}
	st := State(strings.ToLower(strings.TrimSpace(s)))
	if !st.Valid() {
		return "", fmt.Errorf("unknown state %q (want one of queued, scheduled, running, paused, succeeded, failed, cancelled)", s)
	}
	return st, nil
}

// SeedState maps s to the vocabulary of PraisonAI's background tasks and the Job SDK:
// pending, running, completed, failed, cancelled.
func (s State) SeedState() string {
	switch s {
	case StateQueued, StateScheduled, StatePaused:
		return "pending"
	case StateSucceeded:
		return "completed"
	}
	return string(s)
}

// Priority orders queued runs: higher priorities start first, FIFO within one.
type Priority int

// The priorities, lowest first.
const (
	PriorityLow    Priority = 0
	PriorityNormal Priority = 1
	PriorityHigh   Priority = 2
	PriorityUrgent Priority = 3
)

// ParsePriority parses "urgent", "high", "normal" or "low", in any case.
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "urgent":
		return PriorityUrgent, nil
	case "high":
		return PriorityHigh, nil
	case "normal", "":
		return PriorityNormal, nil
	case "low":
		return PriorityLow, nil
	}
	return 0, fmt.Errorf("unknown priority %q (want one of urgent, high, normal, low)", s)
}

// String returns the priority's name.
func (p Priority) String() string {
	switch p {
	case PriorityUrgent:
		return "urgent"
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// Valid reports whether p is one of the four priorities.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityUrgent }

// MarshalJSON writes the priority as its name.
func (p Priority) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a priority name or its number (0-3).
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParsePriority(s)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("priority must be a string or a number")
	}
	if !Priority(n).Valid() {
		return fmt.Errorf("priority %d out of range 0-3", n)
	}
	*p = Priority(n)
	return nil
}
