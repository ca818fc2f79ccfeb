-- avatar images, stored and removed in the same transaction as their chatbot's change.
CREATE TABLE avatars (
    id UUID PRIMARY KEY,
    image_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    bytes BYTEA NOT NULL
);
