//! The `chatbots` table: records with their slug and listing indexes, written with their change-log
//! event, their avatar and their idempotency claim in one transaction.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::avatar::{AvatarRef, StoredAvatar};
use crate::changes::{ChangeKind, ChatbotEvent};
use crate::chatbot::{Chatbot, ChatbotConfig, Published};
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp, VersionId};
use crate::error::{Error, Result};
use crate::history::{DeletedChatbot, Revision};
use crate::idempotency::{Outcome, Written};
use crate::rules::SlugChoice;
use crate::store::{
    ChatbotDeletion, ChatbotStore, ChatbotUpdate, Filter, Listing, NewChatbot, PageCursor, Served, StoreFuture,
    slug_candidates,
};

use super::avatars::{AVATAR_COLUMNS, avatar_from_row, insert_avatar, remove_avatars};
use super::batch::{NewRecord, Replacement, Taken};
use super::claims::{check_claim, commit, record_claim};
use super::failure::Failure;
use super::{PostgresStore, bin, changes, column, history};

/// How many derived-slug candidates are looked up in one query.
pub(super) const SLUG_BATCH: usize = 64;
/// The columns a chatbot is read from, in [`chatbot_from_row`]'s order.
pub(super) const COLUMNS: &str =
    "id, organisation_id, config, created_at, updated_at, revision, published_revision, published_version";

/// A chatbot from a row of [`COLUMNS`]; its configuration is re-checked by the types' own parsers.
pub(super) fn chatbot_from_row(row: &Row) -> Result<Chatbot> {
    chatbot_from_row_at(row, 0)
}

/// A chatbot from a row whose columns from `at` on are [`COLUMNS`].
pub(super) fn chatbot_from_row_at(row: &Row, at: usize) -> Result<Chatbot> {
    let Json(config): Json<ChatbotConfig> = column(row, at + 2)?;
    Ok(Chatbot {
        id: ChatbotId::from_uuid(column(row, at)?),
        organization_id: OrgId::from_uuid(column(row, at + 1)?),
        config,
        created_at: Timestamp::from_datetime(column(row, at + 3)?),
        updated_at: Timestamp::from_datetime(column(row, at + 4)?),
        revision: u64::try_from(column::<i64>(row, at + 5)?).map_err(Error::storage)?,
        published: match (column::<Option<i64>>(row, at + 6)?, column::<Option<Uuid>>(row, at + 7)?) {
            (Some(revision), Some(version)) => Some(Published {
                revision: u64::try_from(revision).map_err(Error::storage)?,
                version_id: VersionId::from_uuid(version),
            }),
            _ => None,
        },
    })
}

/// `org`'s chatbot `id` and its head revision, read with `lock` (`FOR UPDATE`, or nothing).
async fn read_owned(
    client: &impl GenericClient,
    org: OrgId,
    id: ChatbotId,
    lock: &str,
) -> Result<(Chatbot, Revision), Failure> {
    let sql = format!("SELECT head, {COLUMNS} FROM chatbots WHERE id = $1 AND organisation_id = $2 {lock}");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await?.ok_or(Error::NotFound)?;
    let current = chatbot_from_row_at(&row, 1)?;
    let head = history::head_of(&current, column(&row, 0)?);
    Ok((current, head))
}

/// The revision as stored.
pub(super) fn revision(chatbot: &Chatbot) -> Result<i64> {
    i64::try_from(chatbot.revision).map_err(Error::storage)
}

impl PostgresStore {
    async fn create_attempt(&self, new: &NewChatbot, attempt: u32) -> Result<Written<Chatbot>, Failure> {
        let mut client = self.client().await?;
        let Some(claim) = &new.claim else {
            // Without a key, one statement: nothing to make atomic beyond it.
            return Ok(Written::fresh(insert_resolving_slug(&client, new).await?));
        };
        let org = new.chatbot.organization_id;
        let tx = client.transaction().await?;
        if let Some(outcome) = check_claim(&tx, org, claim).await? {
            return Ok(outcome.replayed_chatbot()?);
        }
        let chatbot = insert_resolving_slug(&tx, new).await?;
        record_claim(&tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone()))).await?;
        self.maybe_inject_failure(&tx, attempt).await?;
        commit(self, tx, org, Some(claim)).await?;
        Ok(Written::fresh(chatbot))
    }

    /// The stored chatbot and its head revision, locked for this transaction, if `org` owns it and it
    /// has `expected_etag`.
    async fn lock_owned(
        tx: &deadpool_postgres::Transaction<'_>,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
    ) -> Result<(Chatbot, Revision), Failure> {
        let (current, head) = read_owned(tx, org, id, "FOR UPDATE").await?;
        current.check_etag(expected_etag)?;
        Ok((current, head))
    }

    /// The update as a batch takes it, or `None` when it goes the one-by-one way: it claims a key,
    /// stores an avatar or publishes (each checked in its own transaction), or it would change the
    /// chatbot's slug (which may be taken). Read without a lock; the batch writes it only if the
    /// chatbot is still at the revision read, and hands it back otherwise.
    async fn batched_update(&self, update: &ChatbotUpdate) -> Option<Result<Written<Chatbot>>> {
        let plain = update.claim.is_none() && update.avatar.is_none() && update.publish.is_none();
        let batchers = self.updates.as_ref().filter(|_| plain && !self.options.inject_serialization_failures)?;
        let read = async {
            let client = self.client().await?;
            read_owned(&client, update.org, update.id, "").await
        };
        let (current, replaced) = match read.await {
            Ok(read) => read,
            Err(Failure::Fail(err)) => return Some(Err(err)),
            Err(Failure::Retry(_)) => return None,
        };
        let (next, slug) = match update.apply(&current) {
            Ok(Some(applied)) => applied,
            // Nothing changes: no revision, no event, nothing to write.
            Ok(None) => return Some(Ok(Written::fresh(current))),
            Err(err) => return Some(Err(err)),
        };
        if slug == SlugChoice::Derived || next.config.slug != current.config.slug {
            return None;
        }
        let made = update.revision(&current, &next);
        let answer = next.clone();
        match batchers.write(Replacement { current, replaced, next, made }).await {
            Taken::Written => Some(Ok(Written::fresh(answer))),
            Taken::HandedBack => None,
            Taken::Unknown => Some(Err(Error::OutcomeUnknown)),
        }
    }

    async fn update_attempt(&self, update: &ChatbotUpdate, attempt: u32) -> Result<Written<Chatbot>, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(claim) = &update.claim
            && let Some(outcome) = check_claim(&tx, update.org, claim).await?
        {
            return Ok(outcome.replayed_chatbot()?);
        }
        let (current, head) = Self::lock_owned(&tx, update.org, update.id, None).await?;
        if let Some(Some(published)) = update.publish
            && published.revision != current.revision
        {
            let statement = tx
                .prepare_cached(
                    "SELECT 1 FROM chatbot_revisions WHERE chatbot_id = $1 AND revision = $2 AND version_id = $3",
                )
                .await?;
            let number = i64::try_from(published.revision).map_err(Error::storage)?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [current.id.as_uuid(), &number, published.version_id.as_uuid()];
            if tx.query_opt(&statement, &params).await?.is_none() {
                return Err(Failure::Fail(Error::NotFound));
            }
        }
        let Some((mut next, slug)) = update.apply(&current)? else {
            // Nothing changes: no revision, no event; the claim still records the answer.
            if let Some(claim) = &update.claim {
                record_claim(&tx, update.org, claim, Outcome::Chatbot(Box::new(current.clone()))).await?;
                tx.commit().await?;
            }
            return Ok(Written::fresh(current));
        };
        if next.config.slug != current.config.slug
            && slug != SlugChoice::Derived
            && !bin::reserved(&tx, &[next.config.slug.as_str()], update.org).await?.is_empty()
        {
            return Err(Failure::Fail(Error::SlugTaken { slug: next.config.slug.to_string() }));
        }
        next.config.slug = match slug {
            SlugChoice::Kept | SlugChoice::Exact => next.config.slug,
            SlugChoice::Derived => first_free_slug(&tx, &next.config.slug, Some(next.id), update.org)
                .await?
                .ok_or_else(|| Error::SlugTaken { slug: next.config.slug.to_string() })?,
        };
        // The record with its new head revision, the replaced head kept as a revision with its content,
        // and the event: one statement, one round trip.
        let statement = tx
            .prepare_cached(
                "WITH updated AS (
                    UPDATE chatbots SET slug = $3, is_public = $4, active = $5, updated_at = $6, revision = $7,
                        config = $8, published_revision = $9, published_version = $10, head = $16
                    WHERE id = $1 AND revision = $2 RETURNING id
                 ), kept AS (
                    INSERT INTO chatbot_revisions (chatbot_id, revision, version_id, created_at, meta, snapshot)
                    SELECT $1, $2, $12, $13, $14, $11 FROM updated
                 ), logged AS (
                    INSERT INTO chatbotd_changes
                        (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
                    SELECT $17, $1, $18, $7, $19, $6, $15, $20 FROM updated
                 )
                 SELECT count(*) FROM updated",
            )
            .await?;
        let config = &next.config;
        let made = update.revision(&current, &next);
        let changed = tx
            .query_one(
                &statement,
                &[
                    next.id.as_uuid(),
                    &revision(&current)?,
                    &config.slug.as_str(),
                    &config.is_public,
                    &config.active,
                    &next.updated_at.to_datetime(),
                    &revision(&next)?,
                    &Json(config),
                    &next.published.map(|p| i64::try_from(p.revision)).transpose().map_err(Error::storage)?,
                    &next.published.map(|p| *p.version_id.as_uuid()),
                    &Json(&current),
                    head.version_id.as_uuid(),
                    &head.create_time.to_datetime(),
                    &Json(&head),
                    made.version_id.as_uuid(),
                    &Json(&made),
                    update.org.as_uuid(),
                    &made.kind.as_str(),
                    &next.etag(),
                    &Json(&made.changed),
                ],
            )
            .await
            .map(|row| row.try_get::<_, i64>(0));
        match changed {
            Ok(Ok(1)) => {}
            Ok(_) => return Err(Failure::Fail(Error::storage("a locked chatbot changed under its lock"))),
            Err(err) if is_slug_conflict(&err) => {
                return Err(match slug {
                    // A derived slug found free was taken since: look again.
                    SlugChoice::Derived => Failure::retry(&err),
                    SlugChoice::Kept | SlugChoice::Exact => {
                        Failure::Fail(Error::SlugTaken { slug: config.slug.to_string() })
                    }
                });
            }
            Err(err) => return Err(err.into()),
        }
        if let Some(image) = &update.avatar {
            insert_avatar(&tx, image).await?;
        }
        if let Some(claim) = &update.claim {
            record_claim(&tx, update.org, claim, Outcome::Chatbot(Box::new(next.clone()))).await?;
        }
        self.maybe_inject_failure(&tx, attempt).await?;
        commit(self, tx, update.org, update.claim.as_ref()).await?;
        Ok(Written::fresh(next))
    }

    async fn delete_attempt(&self, deletion: &ChatbotDeletion, attempt: u32) -> Result<Written<()>, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(claim) = &deletion.claim
            && let Some(outcome) = check_claim(&tx, deletion.org, claim).await?
        {
            return Ok(outcome.replayed_deletion()?);
        }
        let (current, head) =
            Self::lock_owned(&tx, deletion.org, deletion.id, deletion.expected_etag.as_deref()).await?;
        let statement = tx.prepare_cached("DELETE FROM chatbots WHERE id = $1").await?;
        tx.execute(&statement, &[current.id.as_uuid()]).await?;
        let images = bin::images(&tx, &current).await?;
        if deletion.keep_for.is_zero() {
            // No window: the chatbot, its history and its images go at once.
            history::forget_all(&tx, current.id).await?;
            remove_avatars(&tx, &images).await?;
            changes::log(&tx, &ChatbotEvent::removed(ChangeKind::Deleted, &current)).await?;
        } else {
            history::keep_head(&tx, &current, head).await?;
            let (deleted, revision) = DeletedChatbot::of(current, deletion.keep_for, deletion.provenance.clone());
            bin::withhold(&tx, &images, true).await?;
            bin::put_deleted(&tx, &deleted).await?;
            changes::log(&tx, &ChatbotEvent::of_revision(&revision.revision, None)).await?;
            history::put(&tx, &revision).await?;
        }
        if let Some(claim) = &deletion.claim {
            record_claim(&tx, deletion.org, claim, Outcome::Deleted).await?;
        }
        self.maybe_inject_failure(&tx, attempt).await?;
        commit(self, tx, deletion.org, deletion.claim.as_ref()).await?;
        Ok(Written::fresh(()))
    }

    async fn list_now(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Listing, Failure> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&list_sql(filter, after.is_some())).await?;
        // One more than the page, to know whether more follow.
        let fetch = i64::try_from(limit + 1).map_err(Error::storage)?;
        let rows = match after {
            Some(cursor) => {
                let at = cursor.created_at().to_datetime();
                client.query(&statement, &[org.as_uuid(), &at, cursor.id().as_uuid(), &fetch]).await?
            }
            None => client.query(&statement, &[org.as_uuid(), &fetch]).await?,
        };
        let mut items = rows.iter().map(chatbot_from_row).collect::<Result<Vec<_>>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(Listing { items, more })
    }
}

impl ChatbotStore for PostgresStore {
    fn create(&self, new: NewChatbot) -> StoreFuture<'_, Written<Chatbot>> {
        Box::pin(async move {
            // Group commit first; what the batch cannot take goes the one-by-one way, which says why.
            if let (Some(creates), None, false) =
                (&self.creates, &new.claim, self.options.inject_serialization_failures)
            {
                let record = NewRecord { chatbot: new.chatbot.clone(), revision: new.revision() };
                match creates.write(record).await {
                    Taken::Written => return self.written(Ok(Written::fresh(new.chatbot))),
                    Taken::Unknown => return Err(Error::OutcomeUnknown),
                    Taken::HandedBack => {}
                }
            }
            self.written(self.with_retries(|attempt| self.create_attempt(&new, attempt)).await)
        })
    }

    fn get(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, Chatbot> {
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                let sql = format!("SELECT {COLUMNS} FROM chatbots WHERE id = $1 AND organisation_id = $2");
                let statement = client.prepare_cached(&sql).await?;
                let row = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await?.ok_or(Error::NotFound)?;
                Ok(chatbot_from_row(&row)?)
            })
            .await
        })
    }

    fn public_by_slug(&self, slug: &Slug) -> StoreFuture<'_, Option<Served>> {
        let slug = slug.as_str().to_owned();
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                // The chatbot, and the content of its published revision when that is not the current one.
                let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
                let sql = format!(
                    "SELECT {}, r.snapshot FROM chatbots c LEFT JOIN chatbot_revisions r ON r.chatbot_id = c.id
                     AND r.revision = c.published_revision AND c.published_revision <> c.revision WHERE c.slug = $1",
                    columns.join(", ")
                );
                let statement = client.prepare_cached(&sql).await?;
                let Some(row) = client.query_opt(&statement, &[&slug]).await? else { return Ok(None) };
                let head = chatbot_from_row(&row)?;
                let published: Option<Json<Chatbot>> = column(&row, 8)?;
                let revision = head.revision;
                let chatbot = published.map_or(head, |Json(snapshot)| snapshot);
                Ok(Some(Served { chatbot, revision }).filter(|s| s.chatbot.config.is_public && s.chatbot.config.active))
            })
            .await
        })
    }

    fn list(&self, org: OrgId, filter: Filter, after: Option<PageCursor>, limit: usize) -> StoreFuture<'_, Listing> {
        Box::pin(async move { self.with_retries(|_| self.list_now(org, filter, after, limit)).await })
    }

    fn update(&self, update: ChatbotUpdate) -> StoreFuture<'_, Written<Chatbot>> {
        Box::pin(async move {
            // Group commit first; what the batch cannot take goes the one-by-one way, which says why.
            if let Some(outcome) = self.batched_update(&update).await {
                return self.written(outcome);
            }
            self.written(self.with_retries(|attempt| self.update_attempt(&update, attempt)).await)
        })
    }

    fn delete(&self, deletion: ChatbotDeletion) -> StoreFuture<'_, Written<()>> {
        Box::pin(
            async move { self.written(self.with_retries(|attempt| self.delete_attempt(&deletion, attempt)).await) },
        )
    }

    fn avatar(&self, reference: AvatarRef) -> StoreFuture<'_, Option<StoredAvatar>> {
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                let statement = client
                    .prepare_cached(&format!("SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = $1 AND NOT withheld"))
                    .await?;
                let row = client.query_opt(&statement, &[reference.id.as_uuid()]).await?;
                Ok(row.map(|row| avatar_from_row(&row)).transpose()?)
            })
            .await
        })
    }
}

/// The first of `wanted`, `wanted-1`, `wanted-2`... that no chatbot but `owner` has (nor another
/// organisation than `org` reserves with a deleted chatbot), looked up
/// [`SLUG_BATCH`] at a time; `None` when every candidate ([`slug_candidates`]) is taken.
pub(super) async fn first_free_slug(
    client: &impl GenericClient,
    wanted: &Slug,
    owner: Option<ChatbotId>,
    org: OrgId,
) -> Result<Option<Slug>, Failure> {
    let owner = owner.map(|id| *id.as_uuid()).unwrap_or_else(Uuid::nil);
    // Taken by a chatbot, or reserved by another organisation's deleted one.
    let statement = client
        .prepare_cached(
            "SELECT slug FROM chatbots WHERE slug = ANY($1) AND id <> $2
             UNION ALL SELECT slug FROM deleted_chatbots
             WHERE slug = ANY($1) AND organisation_id <> $3 AND purge_at > now()",
        )
        .await?;
    let mut all = slug_candidates(wanted, SlugChoice::Derived).peekable();
    while all.peek().is_some() {
        let candidates: Vec<Slug> = all.by_ref().take(SLUG_BATCH).collect();
        let names: Vec<&str> = candidates.iter().map(Slug::as_str).collect();
        let taken: Vec<String> = client
            .query(&statement, &[&names, &owner, org.as_uuid()])
            .await?
            .iter()
            .map(|row| column(row, 0))
            .collect::<Result<_>>()?;
        if let Some(free) = candidates.into_iter().find(|slug| !taken.iter().any(|t| t == slug.as_str())) {
            return Ok(Some(free));
        }
    }
    Ok(None)
}

/// Inserts `chatbot` with `slug` unless the slug is taken; whether it did.
pub(super) async fn insert(
    client: &impl GenericClient,
    chatbot: &Chatbot,
    slug: &Slug,
    logged: Logged<'_>,
) -> Result<bool, Failure> {
    let sql = match logged {
        Logged::No => {
            "INSERT INTO chatbots (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (slug) DO NOTHING"
        }
        // One statement, so that a create stays one round trip: its first revision (in its row) and its
        // event exactly when it is inserted.
        Logged::Yes(_) => {
            "WITH inserted AS (
                INSERT INTO chatbots
                    (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config, head)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $12) ON CONFLICT (slug) DO NOTHING RETURNING id
             )
             INSERT INTO chatbotd_changes (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
             SELECT $2, id, 'created', $8, $10, $7, $11, '[]'::jsonb FROM inserted"
        }
    };
    let statement = client.prepare_cached(sql).await?;
    let config = &chatbot.config;
    let (created, updated) = (chatbot.created_at.to_datetime(), chatbot.updated_at.to_datetime());
    let (revision, etag) = (revision(chatbot)?, chatbot.etag());
    let stored = Json(ChatbotConfig { slug: slug.clone(), ..config.clone() });
    let (version, meta) = match logged {
        Logged::Yes(first) => (*first.version_id.as_uuid(), Some(Json(first))),
        Logged::No => (Uuid::nil(), None),
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
        chatbot.id.as_uuid(),
        chatbot.organization_id.as_uuid(),
        &slug.as_str(),
        &config.is_public,
        &config.active,
        &created,
        &updated,
        &revision,
        &stored,
        &etag,
        &version,
        &meta,
    ];
    let given = if matches!(logged, Logged::Yes(_)) { &params[..] } else { &params[..9] };
    let inserted = client.execute(&statement, given).await?;
    Ok(inserted == 1)
}

/// Whether an insert records its first revision and its event (a create) or not (an import).
#[derive(Debug, Clone, Copy)]
pub(super) enum Logged<'a> {
    Yes(&'a Revision),
    No,
}

/// Inserts a new chatbot, resolving its slug as the proposal says; returns it as stored.
pub(super) async fn insert_resolving_slug(client: &impl GenericClient, new: &NewChatbot) -> Result<Chatbot, Failure> {
    let wanted = &new.chatbot.config.slug;
    let taken = || Failure::Fail(Error::SlugTaken { slug: wanted.to_string() });
    let first = new.revision();
    let org = new.chatbot.organization_id;
    if new.slug != SlugChoice::Derived && !bin::reserved(client, &[wanted.as_str()], org).await?.is_empty() {
        return Err(taken());
    }
    // Each lost race means another create just took the candidate, so every round one contender wins:
    // looking again until the candidates run out always ends, and never refuses a derived slug while
    // one is free (16 rounds used to, for the 17th of many concurrent creates of one name).
    for _ in 0..=crate::domain::limits::MAX_SLUG_SUFFIX {
        let slug = match new.slug {
            SlugChoice::Kept | SlugChoice::Exact => wanted.clone(),
            SlugChoice::Derived => first_free_slug(client, wanted, None, org).await?.ok_or_else(taken)?,
        };
        // The unique index decides between concurrent creates.
        if insert(client, &new.chatbot, &slug, Logged::Yes(&first)).await? {
            let mut chatbot = new.chatbot.clone();
            chatbot.config.slug = slug;
            return Ok(chatbot);
        }
        if new.slug != SlugChoice::Derived {
            break;
        }
    }
    Err(taken())
}

/// Whether `err` is the unique slug index refusing a slug.
pub(super) fn is_slug_conflict(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("chatbots_slug_key"))
}

/// The listing query for `filter`: per flag combination, an index scan of at most the page in listing
/// order (newest first, ties by ascending id), after the cursor when there is one; the scans merged
/// with `UNION ALL` and cut to the page. Parameters: `$1` organisation, then (with a cursor) `$2` its
/// creation time and `$3` its id, then the row limit.
pub(super) fn list_sql(filter: Filter, with_cursor: bool) -> String {
    let (after, limit) =
        if with_cursor { (" AND (created_at < $2 OR (created_at = $2 AND id > $3))", "$4") } else { ("", "$2") };
    let scans: Vec<String> = filter
        .flag_combinations()
        .into_iter()
        .map(|(is_public, active)| {
            format!(
                "(SELECT id, created_at FROM chatbots \
                 WHERE organisation_id = $1 AND is_public = {is_public} AND active = {active}{after} \
                 ORDER BY created_at DESC, id LIMIT {limit})"
            )
        })
        .collect();
    let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
    format!(
        "SELECT {} FROM ({}) AS page JOIN chatbots AS c ON c.id = page.id \
         ORDER BY page.created_at DESC, page.id LIMIT {limit}",
        columns.join(", "),
        scans.join(" UNION ALL ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_scans_one_range_per_flag_combination() {
        let all = list_sql(Filter::default(), false);
        assert_eq!(all.matches("UNION ALL").count(), 3);
        assert!(all.ends_with("LIMIT $2"));
        let one = list_sql(Filter { is_public: Some(true), active: Some(false) }, true);
        assert_eq!(one.matches("UNION ALL").count(), 0);
        assert!(one.contains("is_public = true AND active = false AND (created_at < $2"));
        assert!(one.ends_with("LIMIT $4"));
    }
}
