-- Spool's PostgreSQL schema. Times are timestamptz (microseconds); JSON documents are text,
-- kept byte for byte as submitted.

-- runs: seq is the submit order (FIFO within a priority). A run keeps its seq for life, so a
-- re-queued or resumed run goes back to its original place.
CREATE TABLE runs (
    id                  text        PRIMARY KEY,
    seq                 bigint      GENERATED ALWAYS AS IDENTITY,
    recipe              text        NOT NULL,
    agent               text        NOT NULL,
    workspace           text        NOT NULL,
    session_id          text        NOT NULL DEFAULT '',
    state               text        NOT NULL,
    priority            smallint    NOT NULL,
    input               text,
    config              text,
    metadata            text,
    result              text,
    error               text        NOT NULL DEFAULT '',
    error_code          text        NOT NULL DEFAULT '',
    progress_pct        float8      NOT NULL DEFAULT 0,
    progress_step       text        NOT NULL DEFAULT '',
    steps_completed     integer     NOT NULL DEFAULT 0,
    steps_total         integer     NOT NULL DEFAULT 0,
    attempt             integer     NOT NULL DEFAULT 0,
    max_retries         integer     NOT NULL DEFAULT 0,
    timeout_sec         integer     NOT NULL DEFAULT 0,
    retry_of            text        NOT NULL DEFAULT '',
    idempotency_key     text        NOT NULL DEFAULT '',
    idempotency_scope   text        NOT NULL DEFAULT '',
    -- idem_key is the deduplication key (scope and key combined); NULL when there is none.
    idem_key            text,
    webhook_url         text        NOT NULL DEFAULT '',
    webhook_events      text[],
    schedule_id         text        NOT NULL DEFAULT '',
    scheduled_for       timestamptz,
    created_at          timestamptz NOT NULL,
    run_at              timestamptz,
    available_at        timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    cancel_requested_at timestamptz,
    node                text        NOT NULL DEFAULT '',
    lease_until         timestamptz,
    -- purge_on_finish: a clear --all met the run running; it is deleted when it ends.
    purge_on_finish     boolean     NOT NULL DEFAULT false,
    CONSTRAINT runs_state_valid CHECK (state IN ('queued', 'scheduled', 'running', 'paused',
        'succeeded', 'failed', 'cancelled'))
);

-- Deduplication: a race of identical submits creates exactly one run (NULLs never collide).
CREATE UNIQUE INDEX runs_idem_key ON runs (idem_key);

-- Claim: queued runs in claim order.
CREATE INDEX runs_claim ON runs (priority DESC, seq) WHERE state = 'queued';
-- Claim when full groups hold a large backlog: each group's queue on its own (and the list
-- of groups with queued runs, by a loose index scan).
CREATE INDEX runs_claim_group ON runs (agent, workspace, priority DESC, seq) WHERE state = 'queued';
-- A session's runs start one at a time in submit order: its head is its earliest queued or
-- running run.
CREATE INDEX runs_session ON runs (session_id, seq)
    WHERE session_id <> '' AND state IN ('queued', 'running');
-- Running runs (few): limit counts, leases, heartbeats.
CREATE INDEX runs_running ON runs (node, lease_until) WHERE state = 'running';
-- Scheduled runs falling due, and queued runs backing off before a retry.
CREATE INDEX runs_scheduled ON runs (run_at) WHERE state = 'scheduled';
CREATE INDEX runs_backoff ON runs (available_at) WHERE state = 'queued' AND available_at > created_at;
-- Retention and clear.
CREATE INDEX runs_finished ON runs (completed_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
-- Counts by state, listing newest first.
CREATE INDEX runs_state ON runs (state, workspace);
CREATE INDEX runs_created ON runs (created_at DESC, seq DESC);
CREATE INDEX runs_workspace_created ON runs (workspace, created_at DESC, seq DESC);

-- run_totals sums wait and duration of terminal runs that started, by workspace, so that
-- averages never scan runs. Kept by the transactions that end runs and that delete them.
CREATE TABLE run_totals (
    workspace    text   PRIMARY KEY,
    waited       bigint NOT NULL DEFAULT 0,
    wait_us      bigint NOT NULL DEFAULT 0,
    timed        bigint NOT NULL DEFAULT 0,
    duration_us  bigint NOT NULL DEFAULT 0
);

-- events: a run's stream, numbered from 1 per run.
CREATE TABLE events (
    run_id     text        NOT NULL,
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    ts         timestamptz NOT NULL,
    body       text        NOT NULL DEFAULT '',
    status     text        NOT NULL DEFAULT '',
    result     text,
    error      text        NOT NULL DEFAULT '',
    error_code text        NOT NULL DEFAULT '',
    attempt    integer     NOT NULL DEFAULT 0,
    progress   text,
    PRIMARY KEY (run_id, seq)
);

-- webhook_deliveries: one per run event a webhook asked for; attempts is a JSON array.
CREATE TABLE webhook_deliveries (
    id          text        PRIMARY KEY,
    run_id      text        NOT NULL,
    event       text        NOT NULL,
    url         text        NOT NULL,
    state       text        NOT NULL,
    attempts    jsonb       NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL,
    next_at     timestamptz NOT NULL,
    lease_node  text        NOT NULL DEFAULT '',
    lease_until timestamptz
);

CREATE INDEX webhook_deliveries_run ON webhook_deliveries (run_id, created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';

-- limits: the cluster-wide concurrency limits (one row).
CREATE TABLE limits (
    id            integer PRIMARY KEY CHECK (id = 1),
    max_global    integer NOT NULL,
    per_agent     integer NOT NULL,
    per_workspace integer NOT NULL,
    agents        text    NOT NULL
);

-- nodes: spool processes and their last heartbeat.
CREATE TABLE nodes (
    id         text        PRIMARY KEY,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    running    integer     NOT NULL DEFAULT 0
);
