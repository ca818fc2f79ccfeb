-- idempotency keys, claimed in the same transaction as the write they belong to.
CREATE TABLE idempotency_keys (
    organisation_id UUID NOT NULL,
    key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    outcome JSONB NOT NULL,
    PRIMARY KEY (organisation_id, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
