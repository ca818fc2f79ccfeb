-- deleted chatbots, kept for undelete until purge_at; a slug here is reserved against other
-- organisations until then. `record` holds the last content and the times (history::DeletedChatbot).
CREATE TABLE deleted_chatbots (
    id UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    slug TEXT NOT NULL,
    is_public BOOL NOT NULL,
    active BOOL NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    purge_at TIMESTAMPTZ NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX deleted_chatbots_by_slug ON deleted_chatbots (slug);
CREATE INDEX deleted_chatbots_by_purge_time ON deleted_chatbots (purge_at);
CREATE INDEX deleted_chatbots_listing ON deleted_chatbots (organisation_id, created_at DESC, id);
-- an image of a deleted chatbot is kept (for undelete) but not served.
ALTER TABLE avatars ADD COLUMN withheld BOOL NOT NULL DEFAULT false;
