//! The schema, as versioned migrations applied at start. Safe when many replicas start at once: the
//! one row of `chatbotd_schema` is locked (`SELECT ... FOR UPDATE`) while migrations run, so exactly one
//! replica applies each, and the others find it done. No advisory locks, which CockroachDB and
//! YugabyteDB lack.

use tokio_postgres::error::SqlState;

use super::{Failure, PostgresStore};
use crate::error::{Error, Result};

/// Every migration, in order (`migrations/NNNN_*.sql`); the schema's version is how many have been
/// applied. Never edit one that has shipped: add another.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_organisations_keys_chatbots.sql"),
    include_str!("migrations/0002_idempotency_keys.sql"),
    include_str!("migrations/0003_avatars.sql"),
    include_str!("migrations/0004_change_log.sql"),
    include_str!("migrations/0005_history.sql"),
    include_str!("migrations/0006_publication.sql"),
    include_str!("migrations/0007_recycle_bin.sql"),
    include_str!("migrations/0008_head_revision.sql"),
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
