-- Retention purges by index, never by scanning the table (issue: a day of traffic).
-- depends: 0001.baseline
--
-- A tombstone's version, NULL for a live item: an index on it holds tombstones
-- only, and a live item's update (its version moves, the column stays NULL) never
-- touches it. The purge walks it in version order: `tombstone_version < horizon`.
-- (Events are purged by their primary key, `seq`, which is their acceptance time
-- in microseconds or a little after it; dead letters by dead_letters_failed.)
ALTER TABLE items ADD COLUMN IF NOT EXISTS tombstone_version BIGINT UNSIGNED
    AS (IF(deleted = 1, version, NULL)) VIRTUAL;
ALTER TABLE items ADD INDEX IF NOT EXISTS items_tombstones (tombstone_version);
