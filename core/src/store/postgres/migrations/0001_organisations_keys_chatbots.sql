-- organisations, their API key hashes, and chatbots with their slug and listing indexes.
CREATE TABLE organisations (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE api_keys (
    hash BYTEA PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    organisation_id UUID NOT NULL REFERENCES organisations (id),
    prefix TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE TABLE chatbots (
    id UUID PRIMARY KEY,
    organisation_id UUID NOT NULL REFERENCES organisations (id),
    slug TEXT NOT NULL,
    is_public BOOL NOT NULL,
    active BOOL NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    revision BIGINT NOT NULL,
    config JSONB NOT NULL,
    CONSTRAINT chatbots_slug_key UNIQUE (slug)
);
CREATE INDEX chatbots_listing ON chatbots (organisation_id, is_public, active, created_at DESC, id);
