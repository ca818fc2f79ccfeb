//! Everything the database holds, out (one REPEATABLE READ snapshot, read a batch at a time while
//! writes go on) and in (records stored as given).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::history::StoredRevision;

use crate::avatar::StoredAvatar;
use crate::chatbot::Chatbot;
use crate::domain::OrgId;
use crate::error::{Error, Result};
use crate::store::{Archive, Organisation, Record, StoreFuture};

use super::avatars::{AVATAR_COLUMNS, avatar_from_row, insert_avatar};
use super::chatbots::{COLUMNS, Logged, chatbot_from_row_at, insert};
use super::failure::Failure;
use super::keys::{KEY_COLUMNS, key_from_row};
use super::{PostgresStore, column};

impl Archive for PostgresStore {
    fn snapshot(&self) -> StoreFuture<'_, Box<dyn crate::store::Snapshot + '_>> {
        Box::pin(async move {
            let snapshot: Box<dyn crate::store::Snapshot + '_> = Box::new(PgSnapshot::take(self).await?);
            Ok(snapshot)
        })
    }

    fn import_organisation(&self, organisation: Organisation) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let id = self.with_retries(|_| self.ensure_org_now(&organisation.name, organisation.id)).await?;
            if id == organisation.id {
                Ok(())
            } else {
                Err(Error::storage(format!("another organisation is already called '{}'", organisation.name)))
            }
        })
    }

    fn import_chatbot(&self, chatbot: Chatbot) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let slug = chatbot.config.slug.clone();
            let insert = || async {
                // The record and its publication, in one transaction.
                let mut client = self.client().await?;
                let client = client.transaction().await?;
                let inserted = insert(&client, &chatbot, &slug, Logged::No).await?;
                if let (true, Some(published)) = (inserted, chatbot.published) {
                    let statement = client
                        .prepare_cached(
                            "UPDATE chatbots SET published_revision = $2, published_version = $3 WHERE id = $1",
                        )
                        .await?;
                    let number = i64::try_from(published.revision).map_err(Error::storage)?;
                    client
                        .execute(&statement, &[chatbot.id.as_uuid(), &number, published.version_id.as_uuid()])
                        .await?;
                }
                client.commit().await?;
                Ok(inserted)
            };
            if self.with_retries(|_| insert()).await? {
                Ok(())
            } else {
                Err(Error::SlugTaken { slug: slug.to_string() })
            }
        })
    }

    fn import_avatar(&self, avatar: StoredAvatar) -> StoreFuture<'_, ()> {
        Box::pin(
            async move { self.with_retries(|_| async { insert_avatar(&self.client().await?, &avatar).await }).await },
        )
    }

    fn import_deleted(&self, deleted: crate::history::DeletedChatbot) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.with_retries(|_| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                super::bin::put_deleted(&tx, &deleted).await?;
                let images = super::bin::images(&tx, &deleted.chatbot).await?;
                super::bin::withhold(&tx, &images, true).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
        })
    }

    fn import_revision(&self, revision: StoredRevision) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.with_retries(|_| async { super::history::put(&self.client().await?, &revision).await }).await
        })
    }
}

/// Chatbots read per batch of an export.
pub(super) const EXPORT_BATCH: i64 = 500;

/// Avatar images read per batch of an export (up to a megabyte each).
pub(super) const AVATAR_EXPORT_BATCH: i64 = 8;

/// A snapshot of the database: one REPEATABLE READ, READ ONLY transaction on a connection of its own,
/// read in id order, a batch at a time.
pub(super) struct PgSnapshot {
    /// `None` once the transaction is committed (and the connection back in the pool).
    client: Option<deadpool_postgres::Object>,
    head_read: bool,
    /// Whether every chatbot has been read (avatar images come next).
    chatbots_read: bool,
    /// The last chatbot, then the last avatar image, read.
    after: Option<Uuid>,
    /// Whether every avatar image has been read (revisions come last).
    avatars_read: bool,
    /// The last revision read: its chatbot and number.
    revisions_after: (Uuid, i64),
    /// Whether every revision has been read (deleted chatbots come last).
    revisions_read: bool,
}

impl PgSnapshot {
    async fn take(store: &PostgresStore) -> Result<Self> {
        let client = store.client().await.map_err(Failure::into_error)?;
        // The snapshot is taken by the transaction's first statement.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1")
            .await
            .map_err(|err| Failure::from(err).into_error())?;
        Ok(PgSnapshot {
            client: Some(client),
            head_read: false,
            chatbots_read: false,
            after: None,
            avatars_read: false,
            revisions_after: (Uuid::nil(), 0),
            revisions_read: false,
        })
    }

    async fn next_now(&mut self) -> Result<Option<Vec<Record>>, Failure> {
        let Some(client) = &self.client else { return Ok(None) };
        let mut batch = Vec::new();
        if !self.head_read {
            self.head_read = true;
            for row in client.query("SELECT id, name FROM organisations ORDER BY id", &[]).await? {
                batch.push(Record::Organisation(Organisation {
                    id: OrgId::from_uuid(column(&row, 0)?),
                    name: column(&row, 1)?,
                }));
            }
            let keys = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
            for row in client.query(&keys, &[]).await? {
                batch.push(Record::ApiKey(key_from_row(&row)?));
            }
            return Ok(Some(batch));
        }
        if !self.chatbots_read {
            let sql =
                format!("SELECT head, {COLUMNS} FROM chatbots WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2");
            let rows = client.query(&sql, &[&self.after, &EXPORT_BATCH]).await?;
            for row in &rows {
                let chatbot = chatbot_from_row_at(row, 1)?;
                self.after = Some(*chatbot.id.as_uuid());
                // Its head revision right after it (none for a chatbot stored before history).
                let head: Option<Json<crate::history::Revision>> = column(row, 0)?;
                batch.push(Record::Chatbot(Box::new(chatbot)));
                if let Some(Json(head)) = head {
                    batch.push(Record::Revision {
                        revision: Box::new(StoredRevision { revision: head, snapshot: None }),
                    });
                }
            }
            if rows.len() < EXPORT_BATCH as usize {
                (self.chatbots_read, self.after) = (true, None);
            }
            return Ok(Some(batch));
        }
        if !self.avatars_read {
            let sql =
                &format!("SELECT {AVATAR_COLUMNS} FROM avatars WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2");
            let rows = client.query(sql, &[&self.after, &AVATAR_EXPORT_BATCH]).await?;
            for row in &rows {
                let avatar = avatar_from_row(row)?;
                self.after = Some(*avatar.reference.id.as_uuid());
                batch.push(Record::Avatar(avatar));
            }
            self.avatars_read = rows.len() < AVATAR_EXPORT_BATCH as usize;
            return Ok(Some(batch));
        }
        if !self.revisions_read {
            let sql = "SELECT chatbot_id, revision, meta, snapshot FROM chatbot_revisions
                       WHERE (chatbot_id, revision) > ($1, $2) ORDER BY chatbot_id, revision LIMIT $3";
            let (after_id, after_number) = self.revisions_after;
            let rows = client.query(sql, &[&after_id, &after_number, &EXPORT_BATCH]).await?;
            for row in &rows {
                self.revisions_after = (column(row, 0)?, column(row, 1)?);
                let Json(revision) = column(row, 2)?;
                let snapshot: Option<Json<Chatbot>> = column(row, 3)?;
                let snapshot = snapshot.map(|Json(chatbot)| Box::new(chatbot));
                batch.push(Record::Revision { revision: Box::new(StoredRevision { revision, snapshot }) });
            }
            if rows.len() < EXPORT_BATCH as usize {
                (self.revisions_read, self.after) = (true, None);
            }
            return Ok(Some(batch));
        }
        let sql = "SELECT id, record FROM deleted_chatbots WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2";
        let rows = client.query(sql, &[&self.after, &EXPORT_BATCH]).await?;
        for row in &rows {
            self.after = Some(column(row, 0)?);
            let Json(deleted) = column(row, 1)?;
            batch.push(Record::Deleted { deleted: Box::new(deleted) });
        }
        if rows.len() < EXPORT_BATCH as usize {
            client.batch_execute("COMMIT").await?;
            self.client = None;
        }
        Ok(Some(batch))
    }
}

impl crate::store::Snapshot for PgSnapshot {
    fn next_batch(&mut self) -> StoreFuture<'_, Option<Vec<Record>>> {
        Box::pin(async move { self.next_now().await.map_err(Failure::into_error) })
    }
}

impl Drop for PgSnapshot {
    fn drop(&mut self) {
        // Left mid-transaction: close the connection rather than hand it back to the pool in one.
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
