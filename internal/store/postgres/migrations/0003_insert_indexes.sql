-- Fewer index entries per submit. Every insert writes an entry in each index whose
-- predicate the new row meets, and so does every change of state (changing an indexed
-- column is never a HOT update). A submit now writes runs_pkey, runs_claim,
-- runs_claim_group, runs_created and runs_workspace_created.

-- Only runs with an idempotency key enter the unique index (ON CONFLICT names the
-- predicate). Before, every run added a NULL entry here, at insert and at each change.
DROP INDEX runs_idem_key;
CREATE UNIQUE INDEX runs_idem_key ON runs (idem_key) WHERE idem_key IS NOT NULL;

-- Counts by state: queued runs are counted on runs_claim (and runs_claim_group within a
-- workspace), every other state here, so a submit does not write this index.
DROP INDEX runs_state;
CREATE INDEX runs_state ON runs (state, workspace) WHERE state <> 'queued';

-- Listing newest first reads these backwards. In ascending order a new run's entry goes to
-- the right end, where a B-tree takes increasing keys fastest and splits leave full pages.
DROP INDEX runs_created;
CREATE INDEX runs_created ON runs (created_at, seq);
DROP INDEX runs_workspace_created;
CREATE INDEX runs_workspace_created ON runs (workspace, created_at, seq);
