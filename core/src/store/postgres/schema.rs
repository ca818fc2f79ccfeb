//! The schema, as versioned migrations applied at start. Safe when many replicas start at once: the
//! one row of `chatbotd_schema` is locked (`SELECT ... FOR UPDATE`) while migrations run, so exactly one
//! replica applies each, and the others find it done. No advisory locks, which CockroachDB and
//! YugabyteDB lack.

use tokio_postgres::error::SqlState;

use super::{Failure, PostgresStore};
use crate::error::{Error, Result};

/// Every migration, in order; the schema's version is how many have been applied. Never edit one that
/// has shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: organisations, their API key hashes, and chatbots with their slug and listing indexes.
    "CREATE TABLE organisations (
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
    CREATE INDEX chatbots_listing ON chatbots (organisation_id, is_public, active, created_at DESC, id);",
    // 2: idempotency keys, claimed in the same transaction as the write they belong to.
    "CREATE TABLE idempotency_keys (
        organisation_id UUID NOT NULL,
        key TEXT NOT NULL,
        fingerprint BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        outcome JSONB NOT NULL,
        PRIMARY KEY (organisation_id, key)
    );
    CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);",
    // 3: avatar images, stored and removed in the same transaction as their chatbot's change.
    "CREATE TABLE avatars (
        id UUID PRIMARY KEY,
        image_type TEXT NOT NULL,
        digest TEXT NOT NULL,
        bytes BYTEA NOT NULL
    );",
    // 4: the change log: events inserted with their change, positioned once committed (see changes.rs).
    "CREATE TABLE chatbotd_changes (
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
    INSERT INTO chatbotd_change_log (singleton, head, kept_from) VALUES (true, 0, 1);",
];

impl PostgresStore {
    /// Brings the schema up to date.
    pub(super) async fn migrate(&self) -> Result<()> {
        self.create_version_table().await?;
        self.with_retries(|_| async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let row = tx.query_one("SELECT version FROM chatbotd_schema WHERE singleton FOR UPDATE", &[]).await?;
            let version: i32 = row.try_get(0)?;
            let known = MIGRATIONS.len();
            let applied = usize::try_from(version).map_err(|_| Error::storage("a negative schema version"))?;
            if applied > known {
                let message =
                    format!("the database's schema is version {applied}, newer than this chatbotd's ({known})");
                return Err(Failure::Fail(Error::storage(message)));
            }
            for (number, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
                tracing::info!(version = number + 1, "applying a schema migration");
                tx.batch_execute(migration).await?;
            }
            if applied < known {
                let version = i32::try_from(known).map_err(|_| Error::storage("too many migrations"))?;
                tx.execute("UPDATE chatbotd_schema SET version = $1 WHERE singleton", &[&version]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Creates the one-row version table if needed. Two replicas creating it at the same moment make one
    /// of them fail on the catalog's unique index (a duplicate table, type or key); that one simply tries
    /// again and finds the table.
    async fn create_version_table(&self) -> Result<()> {
        let bootstrap = "CREATE TABLE IF NOT EXISTS chatbotd_schema (
                singleton BOOL PRIMARY KEY DEFAULT true CHECK (singleton),
                version INT NOT NULL
            );
            INSERT INTO chatbotd_schema (singleton, version) VALUES (true, 0) ON CONFLICT (singleton) DO NOTHING;";
        let mut attempts = 0;
        loop {
            let client = self.client().await.map_err(Failure::into_error)?;
            match client.batch_execute(bootstrap).await {
                Ok(()) => return Ok(()),
                Err(err)
                    if attempts < 5
                        && matches!(err.code(), Some(c) if [SqlState::UNIQUE_VIOLATION, SqlState::DUPLICATE_TABLE, SqlState::DUPLICATE_OBJECT].contains(c)) =>
                {
                    attempts += 1;
                }
                Err(err) => return Err(Failure::from(err).into_error()),
            }
        }
    }
}
