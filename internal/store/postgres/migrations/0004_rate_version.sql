-- A counter that every change to rate_buckets increments, in the changing transaction. Claims
-- and holds change rate_buckets under the claim lock, and claims read the counter under it,
-- so a node keeps its copy of rate_buckets between claims while the counter has not moved,
-- instead of reading every bucket at every claim. A trigger, not the application, moves the
-- counter, so that any writer (an older node during an upgrade, an operator) moves it too.
CREATE TABLE rate_version (
    id integer PRIMARY KEY CHECK (id = 1),
    n  bigint NOT NULL
);
INSERT INTO rate_version (id, n) VALUES (1, 0);

CREATE FUNCTION rate_version_bump() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE rate_version SET n = n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER rate_buckets_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rate_buckets
    FOR EACH STATEMENT EXECUTE FUNCTION rate_version_bump();
