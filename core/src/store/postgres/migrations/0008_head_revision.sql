-- the head revision's record (who, why, what it changed) lives beside its content in `chatbots`, so
-- that a create writes one row and an update one revision: `chatbot_revisions` holds only the
-- revisions before the head, each with its content.
ALTER TABLE chatbots ADD COLUMN head JSONB;
UPDATE chatbots SET head = r.meta FROM chatbot_revisions r
    WHERE r.chatbot_id = chatbots.id AND r.revision = chatbots.revision AND r.snapshot IS NULL;
DELETE FROM chatbot_revisions WHERE snapshot IS NULL;
