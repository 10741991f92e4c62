-- The schema of Spillway 0.9 (the tables as schema.sql made them before
-- migrations): every statement is idempotent, so on a database that schema.sql
-- created this migration changes nothing and is only recorded as applied.
--
-- Keys use utf8mb4_nopad_bin: compared and sorted by code point (the same
-- order as their UTF-8 bytes), with no PAD SPACE ('a' <> 'a '), no case or
-- Unicode folding. utf8mb4_bin would treat 'a' and 'a ' as the same key.

CREATE TABLE IF NOT EXISTS items (
    k          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    -- compact JSON text of the item's data; NULL for a tombstone
    data       MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    -- assigned in Redis when the write was accepted; a row only moves forward
    version    BIGINT UNSIGNED NOT NULL,
    deleted    TINYINT(1) NOT NULL DEFAULT 0,
    -- when the write that produced this version was accepted (UTC)
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (k)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS events (
    -- the version assigned at acceptance: unique, in arrival order; a redelivered
    -- batch hits this key and changes nothing
    seq         BIGINT UNSIGNED NOT NULL,
    event_id    VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL,
    name        VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    level       ENUM('debug', 'info', 'warning', 'error', 'critical') NOT NULL,
    occurred_at DATETIME(6) NOT NULL,
    received_at DATETIME(6) NOT NULL,
    data        TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY events_event_id (event_id),
    KEY events_time (occurred_at, seq),
    KEY events_name_time (name, occurred_at, seq),
    KEY events_level_time (level, occurred_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS dead_letters (
    id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    -- the record's version: a redelivered poison record is stored once
    version   BIGINT UNSIGNED NOT NULL,
    write_id  VARCHAR(64) CHARACTER SET ascii NOT NULL,
    kind      VARCHAR(16) CHARACTER SET ascii NOT NULL,
    -- the record as queued (JSON); a blob, so what MySQL rejected can be kept
    record    MEDIUMBLOB NOT NULL,
    reason    TEXT CHARACTER SET utf8mb4 NOT NULL,
    failed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY dead_letters_version (version),
    KEY dead_letters_write (write_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- When the record was accepted: a redriven record goes back with it (and its version).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS accepted_at DATETIME(6) NULL;
ALTER TABLE dead_letters ADD INDEX IF NOT EXISTS dead_letters_failed (failed_at);
