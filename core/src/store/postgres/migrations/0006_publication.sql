-- the revision the public routes serve, once one is published (NULL: the current one).
ALTER TABLE chatbots ADD COLUMN published_revision BIGINT;
ALTER TABLE chatbots ADD COLUMN published_version UUID;
