-- Spool's SQLite schema. Times are unix microseconds (UTC); JSON is TEXT.

-- runs: seq is the rowid and the submit order (FIFO within a priority). A run keeps its seq
-- for life, so a re-queued or resumed run goes back to its original place.
CREATE TABLE runs (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    recipe              TEXT    NOT NULL,
    agent               TEXT    NOT NULL,
    workspace           TEXT    NOT NULL,
    session_id          TEXT    NOT NULL DEFAULT '',
    state               TEXT    NOT NULL,
    priority            INTEGER NOT NULL,
    input               TEXT,
    config              TEXT,
    metadata            TEXT,
    result              TEXT,
    error               TEXT    NOT NULL DEFAULT '',
    error_code          TEXT    NOT NULL DEFAULT '',
    progress_pct        REAL    NOT NULL DEFAULT 0,
    progress_step       TEXT    NOT NULL DEFAULT '',
    steps_completed     INTEGER NOT NULL DEFAULT 0,
    steps_total         INTEGER NOT NULL DEFAULT 0,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_retries         INTEGER NOT NULL DEFAULT 0,
    timeout_sec         INTEGER NOT NULL DEFAULT 0,
    retry_of            TEXT    NOT NULL DEFAULT '',
    idempotency_key     TEXT    NOT NULL DEFAULT '',
    idempotency_scope   TEXT    NOT NULL DEFAULT '',
    -- idem_key is the deduplication key (scope and key combined); NULL when there is none.
    idem_key            TEXT,
    webhook_url         TEXT    NOT NULL DEFAULT '',
    webhook_events      TEXT,
    schedule_id         TEXT    NOT NULL DEFAULT '',
    scheduled_for       INTEGER,
    created_at          INTEGER NOT NULL,
    run_at              INTEGER,
    available_at        INTEGER NOT NULL,
    started_at          INTEGER,
    completed_at        INTEGER,
    cancel_requested_at INTEGER,
    node                TEXT    NOT NULL DEFAULT '',
    lease_until         INTEGER,
    -- purge_on_finish: a clear --all met the run running; it is deleted when it ends.
    purge_on_finish     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Deduplication: a race of identical submits creates exactly one run.
CREATE UNIQUE INDEX runs_idem_key ON runs (idem_key) WHERE idem_key IS NOT NULL;

-- Claim: queued runs in claim order, covering every column the claim filters on, so the
-- scan that skips full groups never touches the table.
CREATE INDEX runs_claim ON runs (priority DESC, seq, available_at, agent, workspace, session_id)
    WHERE state = 'queued';
-- Claim when full groups hold a large backlog: each group's queue on its own.
CREATE INDEX runs_claim_group ON runs (agent, workspace, priority DESC, seq)
    WHERE state = 'queued';
-- A session (a session_id within a workspace) starts its runs in submit order: its earliest
-- queued run is its head.
CREATE INDEX runs_session_queue ON runs (workspace, session_id, seq)
    WHERE state = 'queued' AND session_id <> '';
-- Running runs: busy sessions (session_id first, so runs without one are skipped by a range),
-- leases, cancel requests.
CREATE INDEX runs_running ON runs (session_id, workspace, lease_until, node)
    WHERE state = 'running';
-- Scheduled runs falling due, and queued runs backing off before a retry.
CREATE INDEX runs_scheduled ON runs (run_at) WHERE state = 'scheduled';
CREATE INDEX runs_backoff ON runs (available_at) WHERE state = 'queued' AND available_at > created_at;
-- Terminal runs, and only they, have completed_at set. Partial indexes say so with
-- "completed_at IS NOT NULL": a partial index's WHERE is evaluated on every update of its
-- columns, and "state IN (...)" costs SQLite an ephemeral table each time (measured: five
-- times the cost of the index itself).
-- Retention and clear.
CREATE INDEX runs_finished ON runs (completed_at) WHERE completed_at IS NOT NULL;
-- Listing, newest first (the rowid seq is each index's last column). Listing by an active
-- state walks the table newest first (active runs are mostly the newest); no index on state
-- is kept for it, since one would change on every claim and finish.
CREATE INDEX runs_done ON runs (state) WHERE completed_at IS NOT NULL;
CREATE INDEX runs_workspace ON runs (workspace);
CREATE INDEX runs_agent ON runs (agent);
CREATE INDEX runs_recipe ON runs (recipe);
CREATE INDEX runs_session ON runs (session_id) WHERE session_id <> '';

-- run_stats aggregates runs by group and state, so counts, averages, limits and queue-size
-- checks never scan runs. The driver updates it in the transaction that changes runs, with
-- one upsert per group and batch (triggers cost a sub-program run per row). Wait and
-- duration sums cover terminal runs that started.
CREATE TABLE run_stats (
    workspace   TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    recipe      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    runs        INTEGER NOT NULL DEFAULT 0,
    waited      INTEGER NOT NULL DEFAULT 0,
    wait_us     INTEGER NOT NULL DEFAULT 0,
    timed       INTEGER NOT NULL DEFAULT 0,
    duration_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, agent, recipe, state, priority)
) STRICT, WITHOUT ROWID;

-- events: a run's stream, numbered from 1 per run.
CREATE TABLE events (
    run_id     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    ts         INTEGER NOT NULL,
    text       TEXT,
    status     TEXT,
    result     TEXT,
    error      TEXT,
    error_code TEXT,
    attempt    INTEGER,
    progress   TEXT,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

-- webhook_deliveries: one per run event a webhook asked for; attempts is a JSON array.
CREATE TABLE webhook_deliveries (
    id          TEXT    PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    lease_node  TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX webhook_deliveries_run ON webhook_deliveries (run_id, created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';

-- settings: small cluster-wide values by key (limits).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- nodes: spool processes and their last heartbeat.
CREATE TABLE nodes (
    id         TEXT    PRIMARY KEY,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    running    INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
