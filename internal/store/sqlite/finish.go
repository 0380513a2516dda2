package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

const (
	// The finish statements are guarded: the run must still be running on the node, in the
	// attempt, that finishes it. The changed runs are read back with sqlRunsFinished.
	sqlFinishTerminal = `UPDATE runs SET state = ?1, result = ?2, error = ?3, error_code = ?4, completed_at = ?5,
	lease_until = NULL,
	progress_pct = CASE WHEN ?6 THEN ?7 ELSE progress_pct END,
	progress_step = CASE WHEN ?6 THEN ?8 ELSE progress_step END,
	steps_completed = CASE WHEN ?6 THEN ?9 ELSE steps_completed END,
	steps_total = CASE WHEN ?6 THEN ?10 ELSE steps_total END
WHERE id = ?11 AND +node = ?12 AND +attempt = ?13 AND +state = 'running'`
	sqlFinishRequeue = `UPDATE runs SET state = 'queued', available_at = ?1, error = ?2, error_code = ?3,
	node = '', lease_until = NULL, attempt = attempt - ?4,
	progress_pct = CASE WHEN ?5 THEN ?6 ELSE progress_pct END,
	progress_step = CASE WHEN ?5 THEN ?7 ELSE progress_step END,
	steps_completed = CASE WHEN ?5 THEN ?8 ELSE steps_completed END,
	steps_total = CASE WHEN ?5 THEN ?9 ELSE steps_total END
WHERE id = ?10 AND +node = ?11 AND +attempt = ?12 AND +state = 'running'`
	sqlRunsFinished = `SELECT ` + runColumns + `, purge_on_finish FROM runs WHERE id IN (SELECT value FROM json_each(?))`
)

// RunFinishMany appends events, then ends or re-queues each run still held by the finishing
// node and attempt, in one transaction.
func (s *Store) RunFinishMany(ctx context.Context, events []*spool.Event, ps []*store.RunFinishParams) ([]*spool.Run, error) {
	for _, p := range ps {
		if !p.State.IsTerminal() && p.State != spool.StateQueued {
			return nil, spool.Errorf(spool.CodeInvalid, "finish run %s: state %q is neither terminal nor queued", p.ID, p.State)
		}
	}
	var out []*spool.Run
	err := s.write(ctx, func(tx *wtx) (err error) {
		out, err = finishRuns(tx, events, ps)
		return err
	})
	if err != nil {
		return nil, wrap("finish runs", err)
	}
	return out, nil
}

func finishRuns(tx *wtx, events []*spool.Event, ps []*store.RunFinishParams) ([]*spool.Run, error) {
	progress, err := appendEvents(tx, events)
	if err != nil {
		return nil, err
	}
	var index map[string]int
	if len(progress) > 0 {
		index = make(map[string]int, len(progress))
		for i, rp := range progress {
			index[rp.id] = i
		}
	}
	var changed []string
	held := make([]bool, len(ps)) // the guard of ps[i] held
	for i, p := range ps {
		// A progress event of a run finished here goes into its finish, not an update of its own.
		if i, ok := index[p.ID]; ok && progress[i].progress != nil {
			if p.Progress == nil {
				q := *p
				q.Progress = progress[i].progress
				p = &q
			}
			progress[i].progress = nil
		}
		ok, err := finishRun(tx, p)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", p.ID, err)
		}
		if ok {
			held[i] = true
			changed = append(changed, p.ID)
		}
	}
	if err := applyProgress(tx, progress); err != nil {
		return nil, err
	}
	out := make([]*spool.Run, len(ps))
	if len(changed) == 0 {
		return out, nil
	}
	rows, err := tx.query(sqlRunsFinished, jsonList(changed))
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*spool.Run, len(changed))
	purge := map[string]bool{}
	for rows.Next() {
		var pf bool
		r, err := scanRunExtra(rows, &pf)
		if err != nil {
			rows.Close()
			return nil, err
		}
		byID[r.ID] = r
		purge[r.ID] = pf && r.State.IsTerminal()
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for i, p := range ps {
		r := byID[p.ID]
		if !held[i] || r == nil {
			continue
		}
		out[i] = r
		tx.statsMove(r, spool.StateRunning)
		switch {
		case purge[r.ID]:
			if err := purgeRun(tx, r); err != nil {
				return nil, err
			}
		case r.State.IsTerminal():
			if err := enqueueWebhook(tx, r, r.CompletedAt.UTC()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// finishRun applies one finish and reports whether its guard held.
func finishRun(tx *wtx, p *store.RunFinishParams) (bool, error) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	var (
		hasProgress bool
		pr          spool.Progress
	)
	if p.Progress != nil {
		hasProgress, pr = true, *p.Progress
	}
	var (
		res sql.Result
		err error
	)
	if p.State == spool.StateQueued {
		at := p.AvailableAt
		if at.IsZero() {
			at = now
		}
		keep := 0
		if p.KeepAttempt {
			keep = 1
		}
		res, err = tx.exec(sqlFinishRequeue, micros(at), p.Error, p.ErrorCode, keep,
			hasProgress, pr.Percentage, pr.CurrentStep, pr.StepsCompleted, pr.StepsTotal, p.ID, p.Node, p.Attempt)
	} else {
		res, err = tx.exec(sqlFinishTerminal, string(p.State), nullText(p.Result), p.Error, p.ErrorCode, micros(now),
			hasProgress, pr.Percentage, pr.CurrentStep, pr.StepsCompleted, pr.StepsTotal, p.ID, p.Node, p.Attempt)
	}
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
