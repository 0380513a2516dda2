-- A counter that every write to rate_buckets increments, in the same transaction and under
-- the claim lock. A node keeps its copy of rate_buckets between claims while the counter
-- has not moved, instead of reading every bucket at every claim.
CREATE TABLE rate_version (
    id integer PRIMARY KEY CHECK (id = 1),
    n  bigint NOT NULL
);
INSERT INTO rate_version (id, n) VALUES (1, 0);
