-- Schedules, rate-limit buckets and agent holds. Times are unix microseconds (UTC).

-- schedules: when to start runs and the run to start. next_at is the next tick to fire; a
-- fire moves it in the transaction that inserts the tick's runs, guarded by the value read.
CREATE TABLE schedules (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    workspace    TEXT    NOT NULL,
    recipe       TEXT    NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('api', 'recipe')),
    cron         TEXT    NOT NULL DEFAULT '',
    every        TEXT    NOT NULL DEFAULT '',
    timezone     TEXT    NOT NULL DEFAULT '',
    catchup      TEXT    NOT NULL,
    overlap      TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    input        TEXT,
    config       TEXT,
    metadata     TEXT,
    priority     INTEGER,
    agent        TEXT    NOT NULL DEFAULT '',
    timeout_sec  INTEGER NOT NULL DEFAULT 0,
    max_retries  INTEGER,
    next_at      INTEGER,
    last_at      INTEGER,
    last_run_id  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX schedules_name ON schedules (workspace, name);
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0 AND next_at IS NOT NULL;

-- One run per tick.
CREATE UNIQUE INDEX runs_schedule_tick ON runs (schedule_id, scheduled_for) WHERE schedule_id <> '';
-- overlap: skip looks for an active run of the schedule (active runs have no completed_at).
CREATE INDEX runs_schedule_active ON runs (schedule_id) WHERE schedule_id <> '' AND completed_at IS NULL;

-- rate_buckets: token buckets ("agent:NAME", "workspace:NAME", "recipe:NAME") and provider
-- back-off holds. tokens were left at updated_at; full_at is when the bucket is full again (a
-- row whose full_at and held_until have passed is the same as no row).
CREATE TABLE rate_buckets (
    key         TEXT    PRIMARY KEY,
    tokens      REAL    NOT NULL,
    updated_at  INTEGER NOT NULL,
    full_at     INTEGER NOT NULL,
    held_until  INTEGER
) STRICT, WITHOUT ROWID;
