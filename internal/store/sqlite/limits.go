package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spool-run/spool"
)

const (
	sqlSettingGet = `SELECT value FROM settings WHERE key = ?`
	sqlSettingSet = `INSERT INTO settings (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`
)

// LimitsGet returns the stored concurrency limits (all zero, unlimited, when never set).
func (s *Store) LimitsGet(ctx context.Context) (spool.Limits, error) {
	var l spool.Limits
	var v string
	err := s.queryRowRead(ctx, sqlSettingGet, "limits").Scan(&v)
	if isNoRows(err) {
		return l, nil
	}
	if err != nil {
		return l, wrap("get limits", err)
	}
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		return l, fmt.Errorf("sqlite: get limits: decode: %w", err)
	}
	return l, nil
}

// LimitsSet replaces the concurrency limits and reports whether they changed.
func (s *Store) LimitsSet(ctx context.Context, l spool.Limits) (bool, error) {
	if len(l.Agents) == 0 {
		l.Agents = nil
	}
	b, err := json.Marshal(l) // map keys are sorted: equal limits encode equally
	if err != nil {
		return false, fmt.Errorf("sqlite: set limits: %w", err)
	}
	var changed bool
	err = s.write(ctx, func(tx *wtx) error {
		var old string
		err := tx.queryRow(sqlSettingGet, "limits").Scan(&old)
		switch {
		case isNoRows(err):
			old = `{"max_concurrent":0,"max_per_agent":0,"max_per_workspace":0}`
		case err != nil:
			return err
		}
		changed = old != string(b)
		if !changed {
			return nil
		}
		_, err = tx.exec(sqlSettingSet, "limits", string(b))
		return err
	})
	if err != nil {
		return false, wrap("set limits", err)
	}
	return changed, nil
}
