-- the change log: events inserted with their change, positioned once committed (see changes.rs).
CREATE TABLE chatbotd_changes (
    id BIGSERIAL PRIMARY KEY,
    position BIGINT UNIQUE,
    organisation_id UUID NOT NULL,
    chatbot_id UUID NOT NULL,
    kind TEXT NOT NULL,
    revision BIGINT NOT NULL,
    etag TEXT,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX chatbotd_changes_unpublished ON chatbotd_changes (id) WHERE position IS NULL;
CREATE INDEX chatbotd_changes_by_organisation ON chatbotd_changes (organisation_id, position);
CREATE TABLE chatbotd_change_log (
    singleton BOOL PRIMARY KEY DEFAULT true CHECK (singleton),
    head BIGINT NOT NULL,
    kept_from BIGINT NOT NULL
);
INSERT INTO chatbotd_change_log (singleton, head, kept_from) VALUES (true, 0, 1);
