-- Write receipts and Idempotency-Keys in MySQL once their write is persisted,
-- so that what Redis holds after the drain is bounded (issue: a day of traffic).
-- depends: 0002.retention-by-index
--
-- One row per accepted write, written by the drain in the batch that persists it
-- (before the Stream entry is acknowledged). A write with an Idempotency-Key
-- claims `idem_key` (API key id : digest of the header) before its records are
-- written: a second write with the same key and body, accepted after Redis let
-- the key go, finds the claim taken and is persisted as a duplicate of the first,
-- with none of its records written. Write ids begin with their acceptance time in
-- hex, so the primary key is in time order: retention deletes by key range.
CREATE TABLE IF NOT EXISTS writes (
    write_id     VARCHAR(32) CHARACTER SET ascii NOT NULL,
    kind         ENUM('items', 'events') NOT NULL,
    status       ENUM('queued', 'persisted', 'dead') NOT NULL,
    accepted     INT UNSIGNED NOT NULL,
    persisted    INT UNSIGNED NOT NULL DEFAULT 0,
    dead         INT UNSIGNED NOT NULL DEFAULT 0,
    accepted_at  DATETIME(6) NOT NULL,
    persisted_at DATETIME(6) NULL,
    idem_key     CHAR(49) CHARACTER SET ascii NULL,
    request_hash CHAR(32) CHARACTER SET ascii NULL,
    duplicate_of VARCHAR(32) CHARACTER SET ascii NULL,
    PRIMARY KEY (write_id),
    UNIQUE KEY writes_idem (idem_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
