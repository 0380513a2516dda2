package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans checks that the statements on hot or large paths use the indexes they were
// written for, so a schema or query change cannot silently turn them into scans.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name  string
		query string
		args  int
		want  []string // substrings of the plan
		not   []string
	}{
		{"claim scan", sqlClaimScan, 5, []string{"SCAN r USING COVERING INDEX runs_claim", "runs_session_queue (workspace=? AND session_id=? AND seq<?)"}, []string{"TEMP B-TREE"}},
		{"claim scan with recipe rates", sqlClaimScanRecipes, 6, []string{"SCAN r USING INDEX runs_claim", "runs_session_queue (workspace=? AND session_id=? AND seq<?)"}, []string{"TEMP B-TREE"}},
		{"claim group", sqlClaimGroup, 6, []string{"SEARCH r USING INDEX runs_claim_group (agent=? AND workspace=?)"}, []string{"TEMP B-TREE"}},
		{"due schedules", `SELECT ` + scheduleColumns + ` FROM schedules INDEXED BY schedules_due
			WHERE paused = 0 AND next_at IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?`, 2, []string{"SEARCH schedules USING INDEX schedules_due"}, []string{"TEMP B-TREE"}},
		{"tick exists", sqlTickExists, 2, []string{"runs_schedule_tick (schedule_id=? AND scheduled_for=?)"}, nil},
		{"schedule active", sqlScheduleActive, 1, []string{"runs_schedule_active (schedule_id=?)"}, nil},
		{"claim update", sqlClaimUpdate, 4, []string{"USING INTEGER PRIMARY KEY (rowid=?)"}, nil},
		{"status events", sqlStatusEvents, 2, []string{"USING INTEGER PRIMARY KEY (rowid=?)", "SEARCH e USING PRIMARY KEY (run_id=?)"}, nil},
		{"finish", sqlFinishTerminal, 13, []string{"USING INDEX sqlite_autoindex_runs_1 (id=?)"}, nil},
		{"heartbeat", sqlHeartbeat, 3, []string{"sqlite_autoindex_runs_1 (id=?)"}, nil},
		{"next wake", sqlNextWake, 1, []string{"runs_scheduled", "runs_backoff (available_at>?)"}, []string{"runs_state"}},
		{"promote", sqlPromote, 1, []string{"runs_scheduled (run_at<?)"}, nil},
		{"webhook claim", sqlWebhookClaim, 4, []string{"webhook_deliveries_due (next_at<?)"}, nil},
		{"clear aged", "DELETE FROM runs INDEXED BY runs_finished WHERE " + clearTerminalAged, 2, []string{"runs_finished (completed_at<?)"}, nil},
		{"list terminal state", `SELECT ` + runColumns + ` FROM runs WHERE state = ? AND completed_at IS NOT NULL AND 1 ORDER BY seq DESC LIMIT ? OFFSET ?`, 3, []string{"runs_done (state=?)"}, []string{"TEMP B-TREE"}},
		{"list active state", `SELECT ` + runColumns + ` FROM runs WHERE state = ? AND 1 ORDER BY seq DESC LIMIT ? OFFSET ?`, 3, []string{"SCAN runs"}, []string{"TEMP B-TREE"}},
		{"rescue", sqlRescueFail, 2, []string{"runs_running"}, nil},
		{"busy sessions", sqlBusySessions, 0, []string{"runs_running (session_id>?)"}, nil},
		{"cancel requested", sqlCancelRequested, 1, []string{"runs_running"}, nil},
		{"clear", "DELETE FROM runs WHERE " + clearTerminal, 1, []string{"SEARCH runs USING"}, []string{"SCAN runs"}},
		{"list workspace", `SELECT ` + runColumns + ` FROM runs WHERE workspace = ? ORDER BY seq DESC LIMIT ? OFFSET ?`, 3, []string{"runs_workspace (workspace=?)"}, []string{"TEMP B-TREE"}},
		{"list session", `SELECT ` + runColumns + ` FROM runs WHERE session_id = ? AND session_id <> '' ORDER BY seq DESC LIMIT ? OFFSET ?`, 3, []string{"runs_session (session_id=?)"}, []string{"TEMP B-TREE"}},
	} {
		args := make([]any, tc.args)
		for i := range args {
			args[i] = "[]"
		}
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+tc.query, args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan lacks %q:\n%s", tc.name, w, text)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(text, n) {
				t.Errorf("%s: plan has %q:\n%s", tc.name, n, text)
			}
		}
	}
}
