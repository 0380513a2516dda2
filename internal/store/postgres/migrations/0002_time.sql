-- Schedules, rate-limit buckets and agent holds.

-- schedules: when to start runs and the run to start. next_at is the next tick to fire;
-- a node fires it by moving next_at in a transaction guarded by the value it read.
CREATE TABLE schedules (
    id           text        PRIMARY KEY,
    name         text        NOT NULL,
    workspace    text        NOT NULL,
    recipe       text        NOT NULL,
    source       text        NOT NULL,
    cron         text        NOT NULL DEFAULT '',
    every        text        NOT NULL DEFAULT '',
    timezone     text        NOT NULL DEFAULT '',
    catchup      text        NOT NULL,
    overlap      text        NOT NULL,
    paused       boolean     NOT NULL DEFAULT false,
    input        text,
    config       text,
    metadata     text,
    priority     smallint,
    agent        text        NOT NULL DEFAULT '',
    timeout_sec  integer     NOT NULL DEFAULT 0,
    max_retries  integer,
    next_at      timestamptz,
    last_at      timestamptz,
    last_run_id  text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CONSTRAINT schedules_source_valid CHECK (source IN ('api', 'recipe'))
);

CREATE UNIQUE INDEX schedules_name ON schedules (workspace, name);
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused AND next_at IS NOT NULL;

-- One run per tick: two nodes firing the same tick cannot both insert its run.
CREATE UNIQUE INDEX runs_schedule_tick ON runs (schedule_id, scheduled_for) WHERE schedule_id <> '';
-- overlap: skip looks for an active run of the schedule.
CREATE INDEX runs_schedule_active ON runs (schedule_id)
    WHERE schedule_id <> '' AND state IN ('queued', 'scheduled', 'running', 'paused');

-- rate_buckets: token buckets of rate limits ("agent:NAME", "workspace:NAME",
-- "recipe:NAME") and provider back-off holds. tokens were left at updated_at; full_at is
-- when the bucket is full again (a row whose full_at and held_until have passed is the same
-- as no row).
CREATE TABLE rate_buckets (
    key         text        PRIMARY KEY,
    tokens      float8      NOT NULL,
    updated_at  timestamptz NOT NULL,
    full_at     timestamptz NOT NULL,
    held_until  timestamptz
);

-- A session is a session_id within a workspace.
DROP INDEX runs_session;
CREATE INDEX runs_session ON runs (workspace, session_id, seq)
    WHERE session_id <> '' AND state IN ('queued', 'running');
