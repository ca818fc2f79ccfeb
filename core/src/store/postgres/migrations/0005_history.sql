-- revisions: one row per committed change of a chatbot, written in the change's transaction; the
-- head's content is the chatbot's row (snapshot NULL), an older one's is kept in `snapshot`.
CREATE TABLE chatbot_revisions (
    chatbot_id UUID NOT NULL,
    revision BIGINT NOT NULL,
    version_id UUID NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    meta JSONB NOT NULL,
    snapshot JSONB,
    PRIMARY KEY (chatbot_id, revision)
);
-- events name the revision they record and the paths it changed.
ALTER TABLE chatbotd_changes ADD COLUMN version_id UUID;
ALTER TABLE chatbotd_changes ADD COLUMN changed JSONB;
