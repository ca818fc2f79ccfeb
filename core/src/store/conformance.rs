//! One conformance suite for every engine, in the manner of object_store's `put_get_delete_list(&dyn
//! ObjectStore)`: plain async functions over `&dyn Store`, covering every operation, its errors, and
//! the races that matter (slugs, etags, claims). An engine conforms when [`run`] passes over a new,
//! empty store of it; adding an engine to the suite is one line that calls it.
//!
//! Compiled for the core's own tests and, with the `conformance` feature, for other crates' (the
//! PostgreSQL engine runs it from the workspace's test crate, which has a database to give it).

use futures_util::future::join_all;

use crate::auth::ApiKey;
use crate::avatar::AvatarImage;
use crate::changes::ChangeKind;
use crate::chatbot::{Chatbot, ChatbotDraft};
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp};
use crate::error::Error;
use crate::history::{Actor, Provenance, RevisionRef};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, Outcome};
use crate::rules::{Proposal, Rules, SlugChoice};
use crate::store::{Change, ChatbotDeletion, ChatbotUpdate, Filter, NewChatbot, Record, Store};

/// Runs every check over `store`, which must be new and empty; panics at the first that fails.
pub async fn run(store: &dyn Store) {
    the_first_key_is_made_once_and_keys_admit_until_revoked(store).await;
    a_chatbot_is_stored_read_listed_and_hidden_from_other_organisations(store).await;
    an_exact_slug_is_one_chatbots_and_a_derived_one_finds_a_free_suffix(store).await;
    an_update_checks_the_change_before_the_etag_and_moves_the_slug(store).await;
    a_delete_frees_the_slug_and_removes_the_avatar(store).await;
    a_claimed_key_replays_its_outcome_refuses_another_request_and_expires(store).await;
    only_a_public_active_chatbot_is_found_by_slug(store).await;
    the_change_log_holds_each_committed_write_in_order_per_organisation(store).await;
    concurrent_writers_of_one_slug_or_one_etag_have_exactly_one_winner(store).await;
    a_snapshot_holds_every_record_owners_first(store).await;
    every_change_is_a_revision_whose_snapshot_is_what_was_stored(store).await;
    a_published_revision_is_what_the_public_sees_and_is_never_pruned(store).await;
    a_deleted_chatbot_is_kept_hidden_and_reserved_then_undeleted_or_purged(store).await;
    a_chatbot_stored_before_history_gets_it_from_its_next_change(store).await;
    resealing_reaches_every_stored_content_and_writes_back_only_what_it_changed(store).await;
}

/// A draft named `name` with `slug` (derived from the name when `None`), checked by the default rules.
fn proposal(name: &str, slug: Option<&str>) -> Proposal {
    let draft = ChatbotDraft { name: Some(name.into()), slug: slug.map(Into::into), ..Default::default() };
    Rules::default().check(None, &draft, Rules::create_mask(&draft)).expect("a valid draft")
}

/// A new chatbot of `org` named `name`.
fn new_chatbot(org: OrgId, name: &str, slug: Option<&str>) -> NewChatbot {
    let proposal = proposal(name, slug);
    NewChatbot {
        chatbot: Chatbot::new(org, proposal.config),
        slug: proposal.slug,
        claim: None,
        provenance: Provenance::embedded(),
    }
}

/// A new organisation with a unique name.
async fn organisation(store: &dyn Store, name: &str) -> OrgId {
    let unique = format!("{name}-{}", ChatbotId::new_random());
    store.ensure_org(&unique).await.expect("an organisation")
}

/// An update of `id` that renames it (and keeps its slug).
fn rename(org: OrgId, id: ChatbotId, name: &str, expected_etag: Option<String>) -> ChatbotUpdate {
    let draft = ChatbotDraft { name: Some(name.into()), ..Default::default() };
    let mask = [crate::catalog::Field::Name].into_iter().collect();
    let change = Box::new(move |current: &Chatbot| Rules::default().check(Some(&current.config), &draft, mask));
    ChatbotUpdate { org, id, expected_etag, change, claim: None, avatar: None, ..updating() }
}

/// The removal of `id` at once (no undelete window), requiring `expected_etag` when given.
fn deletion(org: OrgId, id: ChatbotId, expected_etag: Option<String>) -> ChatbotDeletion {
    ChatbotDeletion {
        org,
        id,
        expected_etag,
        claim: None,
        keep_for: std::time::Duration::ZERO,
        provenance: Provenance::embedded(),
    }
}

/// What an update that names only its target and change takes: no claim, no image, by an embedder.
fn updating() -> ChatbotUpdate {
    let change: Change = Box::new(|_| Err(Error::NotFound));
    ChatbotUpdate::new(OrgId::new_random(), ChatbotId::new_random(), None, change, None, Provenance::embedded())
}

/// A claim of `key` for the request `request`, made now and expiring records made before `expired`.
fn claim(key: &str, request: u8, expired_before: Timestamp) -> Claim {
    Claim {
        key: IdempotencyKey::parse(key).expect("a key"),
        fingerprint: Fingerprint::from_bytes([request; 32]),
        at: Timestamp::now(),
        expired_before,
    }
}

async fn the_first_key_is_made_once_and_keys_admit_until_revoked(store: &dyn Store) {
    let org = organisation(store, "keys").await;
    let first = ApiKey::generate();
    assert!(store.add_first_api_key(first.info(org)).await.expect("stored"), "an empty store takes the first key");
    let second = ApiKey::generate();
    assert!(!store.add_first_api_key(second.info(org)).await.expect("answered"), "only while there is none");
    assert!(matches!(store.key_owner(second.hash()).await, Err(Error::Unauthenticated)));
    assert_eq!(store.key_owner(first.hash()).await.expect("admitted").org, org);

    assert_eq!(
        store.ensure_org(&store_name(store, org).await).await.expect("the same"),
        org,
        "ensure_org is idempotent"
    );
    let other = organisation(store, "others").await;
    store.add_api_key(second.info(org)).await.expect("added");
    store.add_api_key(second.info(org)).await.expect("adding it again is harmless");
    assert!(store.add_api_key(second.info(other)).await.is_err(), "a key of another organisation is refused");
    let keys = store.api_keys(Some(org)).await.expect("listed");
    assert_eq!(keys.len(), 2);
    store.touch_api_key(second.hash(), Timestamp::now()).await.expect("noted");
    store.revoke_api_key(keys[1].id).await.expect("revoked");
    assert!(matches!(store.key_owner(keys[1].hash).await, Err(Error::Unauthenticated)), "revoked at once");
    assert!(matches!(store.revoke_api_key(keys[1].id).await, Err(Error::NotFound)));
    assert_eq!(store.api_keys(Some(org)).await.expect("listed").len(), 1);
}

/// The name of organisation `org`.
async fn store_name(store: &dyn Store, org: OrgId) -> String {
    let organisations = store.organisations().await.expect("listed");
    organisations.into_iter().find(|o| o.id == org).expect("stored").name
}

async fn a_chatbot_is_stored_read_listed_and_hidden_from_other_organisations(store: &dyn Store) {
    let (org, other) = (organisation(store, "acme").await, organisation(store, "globex").await);
    let mut created = Vec::new();
    for n in 0..5 {
        let written = store.create(new_chatbot(org, &format!("Bot {n}"), None)).await.expect("created");
        assert!(!written.replayed);
        assert_eq!(written.value.revision, 1);
        created.push(written.value);
    }
    for chatbot in &created {
        assert_eq!(&store.get(org, chatbot.id).await.expect("read"), chatbot);
        assert!(matches!(store.get(other, chatbot.id).await, Err(Error::NotFound)));
    }
    assert!(matches!(store.get(org, ChatbotId::new_random()).await, Err(Error::NotFound)));

    // Newest first, two at a time, nothing skipped or repeated.
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = store.list(org, Filter::default(), after, 2).await.expect("a page");
        seen.extend(page.items.iter().map(|c| c.id));
        if !page.more {
            break;
        }
        after = page.items.last().map(crate::store::PageCursor::after);
    }
    let mut expected: Vec<&Chatbot> = created.iter().collect();
    expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    assert_eq!(seen, expected.iter().map(|c| c.id).collect::<Vec<_>>());
    assert!(store.list(other, Filter::default(), None, 10).await.expect("a page").items.is_empty());
    let public = Filter { is_public: Some(true), active: None };
    assert!(store.list(org, public, None, 10).await.expect("a page").items.is_empty(), "none is public");
}

async fn an_exact_slug_is_one_chatbots_and_a_derived_one_finds_a_free_suffix(store: &dyn Store) {
    let (org, other) = (organisation(store, "slugs").await, organisation(store, "slugs").await);
    let slug = format!("exact-{}", &ChatbotId::new_random().to_string()[..8]);
    store.create(new_chatbot(org, "Exact", Some(&slug))).await.expect("created");
    let taken = store.create(new_chatbot(other, "Exact", Some(&slug))).await;
    assert!(matches!(taken, Err(Error::SlugTaken { .. })), "slugs are unique across organisations");

    let name = format!("Derived {}", &ChatbotId::new_random().to_string()[..8]);
    let slugs: Vec<String> = {
        let mut slugs = Vec::new();
        for _ in 0..3 {
            let chatbot = store.create(new_chatbot(org, &name, None)).await.expect("created").value;
            slugs.push(chatbot.config.slug.to_string());
        }
        slugs
    };
    let base = Slug::derive_from_name(&name).to_string();
    assert_eq!(slugs, [base.clone(), format!("{base}-1"), format!("{base}-2")]);

    // Many at once: every one is created, each with a slug of its own.
    let crowd = format!("Crowd {}", &ChatbotId::new_random().to_string()[..8]);
    let created = join_all((0..40).map(|_| store.create(new_chatbot(org, &crowd, None)))).await;
    let mut slugs: Vec<String> = created
        .into_iter()
        .map(|c| c.expect("a derived slug is never refused").value.config.slug.to_string())
        .collect();
    slugs.sort();
    slugs.dedup();
    assert_eq!(slugs.len(), 40, "40 distinct slugs");
}

async fn an_update_checks_the_change_before_the_etag_and_moves_the_slug(store: &dyn Store) {
    let org = organisation(store, "updates").await;
    let chatbot = store.create(new_chatbot(org, "Before", None)).await.expect("created").value;

    let invalid = rename(org, chatbot.id, "", Some("stale".into()));
    assert!(matches!(store.update(invalid).await, Err(Error::Invalid { .. })), "400 before 412");
    let stale = rename(org, chatbot.id, "After", Some("stale".into()));
    assert!(matches!(store.update(stale).await, Err(Error::EtagMismatch)));
    let elsewhere = rename(organisation(store, "thief").await, chatbot.id, "After", None);
    assert!(matches!(store.update(elsewhere).await, Err(Error::NotFound)), "404 first");

    let updated = store.update(rename(org, chatbot.id, "After", Some(chatbot.etag()))).await.expect("updated").value;
    assert_eq!((updated.revision, updated.config.name.as_str()), (2, "After"));
    assert_ne!(updated.etag(), chatbot.etag());
    assert_eq!(store.get(org, chatbot.id).await.expect("read"), updated);

    // A new exact slug frees the old one.
    let moved = format!("moved-{}", &ChatbotId::new_random().to_string()[..8]);
    let change = {
        let moved = moved.clone();
        Box::new(move |current: &Chatbot| {
            let draft = ChatbotDraft { slug: Some(moved.clone()), ..Default::default() };
            let mask = [crate::catalog::Field::Slug].into_iter().collect();
            Rules::default().check(Some(&current.config), &draft, mask)
        })
    };
    let update =
        ChatbotUpdate { org, id: chatbot.id, expected_etag: None, change, claim: None, avatar: None, ..updating() };
    assert_eq!(store.update(update).await.expect("moved").value.config.slug.as_str(), moved);
    let old = chatbot.config.slug.to_string();
    let reused = store.create(new_chatbot(org, "Reuse", Some(&old))).await.expect("the old slug is free");
    assert_eq!(reused.value.config.slug.as_str(), old);
}

/// A 1x1 PNG, stored as an avatar would be.
fn png() -> AvatarImage {
    let mut bytes = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("a PNG encodes");
    AvatarImage::parse(bytes).expect("a valid PNG")
}

async fn a_delete_frees_the_slug_and_removes_the_avatar(store: &dyn Store) {
    let org = organisation(store, "deletes").await;
    let chatbot = store.create(new_chatbot(org, "Doomed", None)).await.expect("created").value;
    let stored = png().into_stored();
    let reference = stored.reference;
    let change = Box::new(move |current: &Chatbot| {
        let mut config = current.config.clone();
        config.settings.avatar = Some(reference);
        Ok(Proposal { config, slug: SlugChoice::Kept })
    });
    let update = ChatbotUpdate {
        org,
        id: chatbot.id,
        expected_etag: None,
        change,
        claim: None,
        avatar: Some(stored.clone()),
        ..updating()
    };
    let with_avatar = store.update(update).await.expect("updated").value;
    assert_eq!(store.avatar(reference).await.expect("read").as_ref(), Some(&stored));

    let stale = deletion(org, chatbot.id, Some(chatbot.etag()));
    assert!(matches!(store.delete(stale).await, Err(Error::EtagMismatch)));
    store.delete(deletion(org, chatbot.id, Some(with_avatar.etag()))).await.expect("deleted");
    assert!(matches!(store.get(org, chatbot.id).await, Err(Error::NotFound)));
    assert_eq!(store.avatar(reference).await.expect("read"), None, "its image went with it");
    let again = deletion(org, chatbot.id, None);
    assert!(matches!(store.delete(again).await, Err(Error::NotFound)));
    let slug = chatbot.config.slug.to_string();
    store.create(new_chatbot(org, "Heir", Some(&slug))).await.expect("the slug is free");
}

async fn a_claimed_key_replays_its_outcome_refuses_another_request_and_expires(store: &dyn Store) {
    let org = organisation(store, "claims").await;
    let long_ago = Timestamp::from_micros(0);
    let mut first = new_chatbot(org, "Once", None);
    first.claim = Some(claim("k1", 1, long_ago));
    let written = store.create(first).await.expect("created");
    assert!(!written.replayed);

    let mut retry = new_chatbot(org, "Once", None);
    retry.claim = Some(claim("k1", 1, long_ago));
    let replayed = store.create(retry).await.expect("replayed");
    assert!(replayed.replayed);
    assert_eq!(replayed.value, written.value, "the first outcome, not a second chatbot");

    let mut another = new_chatbot(org, "Twice", None);
    another.claim = Some(claim("k1", 2, long_ago));
    assert!(matches!(store.create(another).await, Err(Error::IdempotencyKeyReused)));
    let record = store.claimed(org, &IdempotencyKey::parse("k1").expect("a key")).await.expect("read");
    assert_eq!(record.map(|r| r.outcome), Some(Outcome::Chatbot(Box::new(written.value.clone()))));
    assert_eq!(
        store
            .claimed(organisation(store, "x").await, &IdempotencyKey::parse("k1").expect("a key"))
            .await
            .expect("read"),
        None,
        "keys belong to their organisation"
    );

    // A refused write claims nothing.
    let mut refused = rename(org, ChatbotId::new_random(), "x", None);
    refused.claim = Some(claim("k2", 3, long_ago));
    assert!(matches!(store.update(refused).await, Err(Error::NotFound)));
    assert_eq!(store.claimed(org, &IdempotencyKey::parse("k2").expect("a key")).await.expect("read"), None);

    // Once its record has expired, the key is free again; pruning forgets it.
    let mut later = rename(org, written.value.id, "Later", None);
    later.claim = Some(claim("k1", 4, Timestamp::now()));
    assert!(!store.update(later).await.expect("a fresh write").replayed);
    let future = Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000);
    assert!(store.prune_claims(future, 100).await.expect("pruned") >= 1);
    assert_eq!(store.claimed(org, &IdempotencyKey::parse("k1").expect("a key")).await.expect("read"), None);
}

async fn only_a_public_active_chatbot_is_found_by_slug(store: &dyn Store) {
    let org = organisation(store, "public").await;
    let chatbot = store.create(new_chatbot(org, "Shown", None)).await.expect("created").value;
    let slug = chatbot.config.slug.clone();
    assert_eq!(store.public_by_slug(&slug).await.expect("read"), None, "private by default");
    let publish = |is_public: bool, active: bool| {
        let change = Box::new(move |current: &Chatbot| {
            let mut config = current.config.clone();
            (config.is_public, config.active) = (is_public, active);
            Ok(Proposal { config, slug: SlugChoice::Kept })
        });
        ChatbotUpdate { org, id: chatbot.id, expected_etag: None, change, claim: None, avatar: None, ..updating() }
    };
    let shown = store.update(publish(true, true)).await.expect("updated").value;
    assert_eq!(store.public_by_slug(&slug).await.expect("read").map(|s| s.chatbot), Some(shown));
    store.update(publish(true, false)).await.expect("updated");
    assert_eq!(store.public_by_slug(&slug).await.expect("read"), None, "an inactive one is hidden");
    let unknown = Slug::parse("no-such-slug-anywhere").expect("a slug");
    assert_eq!(store.public_by_slug(&unknown).await.expect("read"), None);
}

async fn the_change_log_holds_each_committed_write_in_order_per_organisation(store: &dyn Store) {
    let (org, other) = (organisation(store, "log").await, organisation(store, "quiet").await);
    store.publish_changes().await.expect("published");
    let from = store.change_signal().head();
    let chatbot = store.create(new_chatbot(org, "Logged", None)).await.expect("created").value;
    let updated = store.update(rename(org, chatbot.id, "Logged again", None)).await.expect("updated").value;
    let refused = rename(org, chatbot.id, "x", Some("stale".into()));
    assert!(store.update(refused).await.is_err());
    store.delete(deletion(org, chatbot.id, None)).await.expect("deleted");
    store.publish_changes().await.expect("published");

    let events = store.changes(org, from, 100).await.expect("read");
    let kinds: Vec<(ChangeKind, u64)> = events.iter().map(|e| (e.kind, e.revision)).collect();
    assert_eq!(
        kinds,
        [(ChangeKind::Created, 1), (ChangeKind::Updated, 2), (ChangeKind::Deleted, 2)],
        "no event of a refused write"
    );
    assert!(events.iter().all(|e| e.chatbot_id == chatbot.id && e.organization_id == org));
    assert_eq!(events[1].etag.as_deref(), Some(updated.etag().as_str()));
    assert!(events.windows(2).all(|w| w[0].position < w[1].position), "in commit order");
    assert!(store.change_signal().head() >= events[2].position);
    assert!(store.changes(other, from, 100).await.expect("read").is_empty(), "only its own organisation's");
    let rest = store.changes(org, events[0].position, 100).await.expect("read");
    assert_eq!(rest, events[1..], "read on from a position");

    // Pruning forgets from the oldest; a position the log no longer reaches back to needs a resync.
    let future = Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000);
    while store.prune_changes(future, 1000).await.expect("pruned") > 0 {}
    assert!(matches!(store.changes(org, from, 100).await, Err(Error::ResyncRequired)));
}

async fn concurrent_writers_of_one_slug_or_one_etag_have_exactly_one_winner(store: &dyn Store) {
    let org = organisation(store, "races").await;
    let slug = format!("raced-{}", &ChatbotId::new_random().to_string()[..8]);
    let creates = join_all((0..16).map(|n| store.create(new_chatbot(org, &format!("Racer {n}"), Some(&slug))))).await;
    assert_eq!(creates.iter().filter(|c| c.is_ok()).count(), 1, "one slug, one chatbot");
    assert!(creates.iter().filter_map(|c| c.as_ref().err()).all(|e| matches!(e, Error::SlugTaken { .. })));

    let chatbot = creates.into_iter().find_map(Result::ok).expect("the winner").value;
    let etag = chatbot.etag();
    let updates =
        join_all((0..8).map(|n| store.update(rename(org, chatbot.id, &format!("Winner {n}"), Some(etag.clone())))))
            .await;
    assert_eq!(updates.iter().filter(|u| u.is_ok()).count(), 1, "one etag, one update");
    assert!(updates.iter().filter_map(|u| u.as_ref().err()).all(|e| matches!(e, Error::EtagMismatch)));
    assert_eq!(store.get(org, chatbot.id).await.expect("read").revision, 2);
}

async fn a_snapshot_holds_every_record_owners_first(store: &dyn Store) {
    let org = organisation(store, "archive").await;
    let chatbot = store.create(new_chatbot(org, "Kept", None)).await.expect("created").value;
    let mut snapshot = store.snapshot().await.expect("a snapshot");
    let mut records = Vec::new();
    while let Some(batch) = snapshot.next_batch().await.expect("a batch") {
        records.extend(batch);
    }
    let rank = |record: &Record| match record {
        Record::Organisation(_) => 0,
        Record::ApiKey(_) => 1,
        // A revision comes after its chatbot, or with it: either way after every owner.
        Record::Chatbot(_) | Record::Avatar(_) | Record::Revision { .. } | Record::Deleted { .. } => 2,
    };
    assert!(records.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "owners before what they own");
    assert!(records.iter().any(|r| matches!(r, Record::Organisation(o) if o.id == org)));
    assert!(records.iter().any(|r| matches!(r, Record::Chatbot(c) if **c == chatbot)));
}

async fn every_change_is_a_revision_whose_snapshot_is_what_was_stored(store: &dyn Store) {
    let org = organisation(store, "history").await;
    store.publish_changes().await.expect("published");
    let from = store.change_signal().head();
    let key = crate::domain::KeyId::new_random();
    let mut new = new_chatbot(org, "First", None);
    new.provenance =
        Provenance::api_key(key, Some("req-1"), Some(crate::history::parse_note("launch").expect("a note")));
    let first = store.create(new).await.expect("created").value;
    let second = store.update(rename(org, first.id, "Second", None)).await.expect("renamed").value;
    let unchanged = store.update(rename(org, first.id, "Second", None)).await.expect("no change").value;
    assert_eq!(unchanged, second, "a change to what is already there writes nothing");
    let mut restore = rename(org, first.id, "First", Some(second.etag()));
    restore.restored_from = Some(1);
    let third = store.update(restore).await.expect("restored").value;
    assert_eq!(third.revision, 3);

    let revisions = store.revisions(org, first.id, None, 10).await.expect("listed");
    let numbers: Vec<(u64, ChangeKind)> = revisions.iter().map(|r| (r.revision, r.kind)).collect();
    assert_eq!(numbers, [(3, ChangeKind::Restored), (2, ChangeKind::Updated), (1, ChangeKind::Created)]);
    assert_eq!(revisions[0].restored_from, Some(1));
    assert_eq!(revisions[1].changed, ["name"]);
    assert_eq!(revisions[2].provenance.actor, Actor::ApiKey { id: key });
    assert_eq!(revisions[2].provenance.request_id.as_deref(), Some("req-1"));
    assert_eq!(revisions[2].provenance.note.as_ref().map(|n| n.as_str()), Some("launch"));
    let below = store.revisions(org, first.id, Some(3), 1).await.expect("a page");
    assert_eq!(below.iter().map(|r| r.revision).collect::<Vec<_>>(), [2]);

    for (number, content) in [(1, &first), (2, &second), (3, &third)] {
        let read = store.revision(org, first.id, RevisionRef::Number(number)).await.expect("read");
        assert_eq!(&read.chatbot, content, "revision {number} holds what was stored then");
        let by_version = store.revision(org, first.id, RevisionRef::Version(read.revision.version_id)).await;
        assert_eq!(by_version.expect("read by version").chatbot, read.chatbot);
    }
    let stranger = organisation(store, "stranger").await;
    assert!(matches!(store.revisions(stranger, first.id, None, 10).await, Err(Error::NotFound)));
    assert!(matches!(store.revision(stranger, first.id, RevisionRef::Number(1)).await, Err(Error::NotFound)));
    assert!(matches!(store.revision(org, first.id, RevisionRef::Number(9)).await, Err(Error::NotFound)));

    // The change log names each revision and what it changed.
    store.publish_changes().await.expect("published");
    let events = store.changes(org, from, 100).await.expect("read");
    let logged: Vec<_> = events.iter().map(|e| (e.revision, e.kind, e.version_id, e.changed.clone())).collect();
    let expected: Vec<_> =
        revisions.iter().rev().map(|r| (r.revision, r.kind, Some(r.version_id), r.changed.clone())).collect();
    assert_eq!(logged, expected);

    // Pruning (by the store's retention, here the default) keeps what is young; a delete forgets all.
    assert_eq!(store.prune_history(Timestamp::now(), 100).await.expect("pruned"), 0);
    store.delete(deletion(org, first.id, None)).await.expect("deleted");
    assert!(matches!(store.revision(org, first.id, RevisionRef::Number(1)).await, Err(Error::NotFound)));
}

/// An update that publishes `published` (or withdraws the publication).
fn publish(org: OrgId, id: ChatbotId, published: Option<crate::chatbot::Published>) -> ChatbotUpdate {
    let change: Change =
        Box::new(|current: &Chatbot| Ok(Proposal { config: current.config.clone(), slug: SlugChoice::Kept }));
    ChatbotUpdate { org, id, change, publish: Some(published), ..updating() }
}

async fn a_published_revision_is_what_the_public_sees_and_is_never_pruned(store: &dyn Store) {
    let org = organisation(store, "publishing").await;
    let mut shown = new_chatbot(org, "Shown", None);
    shown.chatbot.config.is_public = true;
    let first = store.create(shown).await.expect("created").value;
    let slug = first.config.slug.clone();
    let version = store.revision(org, first.id, RevisionRef::Number(1)).await.expect("read").revision.version_id;
    let published = crate::chatbot::Published { revision: 1, version_id: version };
    let pinned = store.update(publish(org, first.id, Some(published))).await.expect("published").value;
    assert_eq!((pinned.revision, pinned.published), (2, Some(published)));
    let edited = store.update(rename(org, first.id, "Edited", None)).await.expect("edited").value;
    assert_eq!(edited.published, Some(published), "edits keep the publication");
    let public = store.public_by_slug(&slug).await.expect("read").expect("public");
    assert_eq!((public.revision, public.chatbot.revision), (3, 1), "the head is 3; what is served, 1");
    assert_eq!(public.chatbot.config.name.as_str(), "Shown", "the published content, not the head");

    // A revision that is not kept cannot be published; republishing the same changes nothing.
    let missing = crate::chatbot::Published { revision: 1, version_id: crate::domain::VersionId::new_random() };
    assert!(matches!(store.update(publish(org, first.id, Some(missing))).await, Err(Error::NotFound)));
    let same = store.update(publish(org, first.id, Some(published))).await.expect("no change").value;
    assert_eq!(same, edited);

    // Publishing is a change of its own; unpublishing serves the head again.
    let kinds: Vec<ChangeKind> =
        store.revisions(org, first.id, None, 10).await.expect("listed").iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ChangeKind::Updated, ChangeKind::Published, ChangeKind::Created]);
    let unpinned = store.update(publish(org, first.id, None)).await.expect("unpublished").value;
    assert_eq!(unpinned.published, None);
    let public = store.public_by_slug(&slug).await.expect("read").expect("public");
    assert_eq!(public.chatbot.config.name.as_str(), "Edited", "the head again");
}

async fn a_deleted_chatbot_is_kept_hidden_and_reserved_then_undeleted_or_purged(store: &dyn Store) {
    let (org, other) = (organisation(store, "bin").await, organisation(store, "bin-other").await);
    let slug = format!("binned-{}", &ChatbotId::new_random().to_string()[..8]);
    let mut kept = new_chatbot(org, "Binned", Some(&slug));
    kept.chatbot.config.is_public = true;
    let chatbot = store.create(kept).await.expect("created").value;
    let stored = png().into_stored();
    let reference = stored.reference;
    let change: Change = Box::new(move |current: &Chatbot| {
        let mut config = current.config.clone();
        config.settings.avatar = Some(reference);
        Ok(Proposal { config, slug: SlugChoice::Kept })
    });
    let update = ChatbotUpdate { org, id: chatbot.id, change, avatar: Some(stored), ..updating() };
    let with_avatar = store.update(update).await.expect("an avatar").value;
    let soft = ChatbotDeletion { keep_for: std::time::Duration::from_secs(3600), ..deletion(org, chatbot.id, None) };
    store.delete(soft).await.expect("deleted");

    // Gone from every read, its image withheld, its history readable, listed as deleted.
    assert!(matches!(store.get(org, chatbot.id).await, Err(Error::NotFound)));
    assert!(matches!(store.update(rename(org, chatbot.id, "x", None)).await, Err(Error::NotFound)));
    let parsed = Slug::parse(&slug).expect("a slug");
    assert_eq!(store.public_by_slug(&parsed).await.expect("read"), None);
    assert_eq!(store.avatar(reference).await.expect("read"), None, "withheld while deleted");
    assert!(
        store.list(org, Filter::default(), None, 100).await.expect("a page").items.iter().all(|c| c.id != chatbot.id)
    );
    let binned = store.deleted(org, Filter::default(), None, 100).await.expect("the bin");
    assert_eq!(binned.iter().map(|d| &d.chatbot).collect::<Vec<_>>(), [&with_avatar]);
    assert!(store.deleted(other, Filter::default(), None, 100).await.expect("the bin").is_empty());
    let kinds: Vec<ChangeKind> =
        store.revisions(org, chatbot.id, None, 10).await.expect("listed").iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ChangeKind::Deleted, ChangeKind::Updated, ChangeKind::Created]);
    let last = store.revision(org, chatbot.id, RevisionRef::Number(3)).await.expect("the deleted revision");
    assert_eq!(last.chatbot.config, with_avatar.config);
    assert!(matches!(store.revisions(other, chatbot.id, None, 10).await, Err(Error::NotFound)));

    // Its slug: reserved against another organisation, free for its own.
    assert!(matches!(store.create(new_chatbot(other, "Squatter", Some(&slug))).await, Err(Error::SlugTaken { .. })));
    let derived = store.create(new_chatbot(other, &slug, None)).await.expect("a derived slug").value;
    assert_ne!(derived.config.slug.as_str(), slug, "a derived slug skips the reserved one");
    let heir = store.create(new_chatbot(org, "Heir", Some(&slug))).await.expect("free for its own").value;

    // Undelete: its slug is taken now, so it needs a new one; a live chatbot is not deleted.
    let undeletion = |slug: Option<&str>| crate::store::Undeletion {
        org,
        id: chatbot.id,
        slug: slug.map(|s| Slug::parse(s).expect("a slug")),
        claim: None,
        provenance: Provenance::embedded(),
    };
    assert!(matches!(store.undelete(undeletion(None)).await, Err(Error::SlugTaken { .. })));
    let new_slug = format!("{slug}-back");
    let back = store.undelete(undeletion(Some(&new_slug))).await.expect("undeleted").value;
    assert_eq!((back.revision, back.config.slug.as_str(), back.created_at), (4, new_slug.as_str(), chatbot.created_at));
    assert_eq!(store.get(org, chatbot.id).await.expect("live again"), back);
    assert!(store.avatar(reference).await.expect("read").is_some(), "served again");
    assert!(matches!(store.undelete(undeletion(None)).await, Err(Error::NotDeleted)));
    assert!(matches!(store.purge(org, chatbot.id).await, Err(Error::NotDeleted)));

    // Purge: the chatbot, its history and its images go; expiry purges by itself.
    let soft = ChatbotDeletion { keep_for: std::time::Duration::from_secs(3600), ..deletion(org, back.id, None) };
    store.delete(soft).await.expect("deleted again");
    assert!(matches!(store.purge(other, back.id).await, Err(Error::NotFound)));
    store.purge(org, back.id).await.expect("purged");
    assert!(matches!(store.revisions(org, back.id, None, 10).await, Err(Error::NotFound)));
    assert!(store.avatar(reference).await.expect("read").is_none());
    assert!(matches!(store.undelete(undeletion(None)).await, Err(Error::NotFound)));
    let brief = ChatbotDeletion { keep_for: std::time::Duration::from_micros(1), ..deletion(org, heir.id, None) };
    store.delete(brief).await.expect("deleted");
    let later = Timestamp::from_micros(Timestamp::now().as_micros() + 1_000_000);
    assert!(store.purge_expired(later, 100).await.expect("purged") >= 1);
    assert!(store.deleted(org, Filter::default(), None, 100).await.expect("the bin").is_empty());
    store.create(new_chatbot(other, "Now theirs", Some(&slug))).await.expect("a purged slug is free for all");
}

async fn a_chatbot_stored_before_history_gets_it_from_its_next_change(store: &dyn Store) {
    // An import stores a record as given, with no revision: as a store written before history was.
    let org = organisation(store, "legacy").await;
    let mut old = new_chatbot(org, "Old timer", None).chatbot;
    old.revision = 3;
    store.import_chatbot(old.clone()).await.expect("imported");
    let listed = store.revisions(org, old.id, None, 10).await.expect("listed");
    assert_eq!(listed.iter().map(|r| (r.revision, r.provenance.actor)).collect::<Vec<_>>(), [(3, Actor::Unrecorded)]);
    let head = store.revision(org, old.id, RevisionRef::Number(3)).await.expect("the head");
    assert_eq!(head.chatbot, old);
    let again = store.revision(org, old.id, RevisionRef::Version(head.revision.version_id)).await.expect("by version");
    assert_eq!(again.revision, head.revision, "its version id is the same at every read");

    let renamed = store.update(rename(org, old.id, "New timer", None)).await.expect("renamed").value;
    let listed = store.revisions(org, old.id, None, 10).await.expect("listed");
    assert_eq!(listed.iter().map(|r| r.revision).collect::<Vec<_>>(), [4, 3]);
    assert_eq!(listed[1].version_id, head.revision.version_id, "the version id it was shown with");
    let kept = store.revision(org, old.id, RevisionRef::Number(3)).await.expect("kept");
    assert_eq!((kept.chatbot, renamed.revision), (old, 4));
}

async fn resealing_reaches_every_stored_content_and_writes_back_only_what_it_changed(store: &dyn Store) {
    use crate::store::{Reseal, ResealCursor};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let org = organisation(store, "reseal").await;
    let live = store.create(new_chatbot(org, "Resealed", None)).await.expect("created").value;
    let live = store.update(rename(org, live.id, "Resealed again", None)).await.expect("renamed").value;
    let gone = store.create(new_chatbot(org, "Resealed and gone", None)).await.expect("created").value;
    let soft = ChatbotDeletion { keep_for: std::time::Duration::from_secs(3600), ..deletion(org, gone.id, None) };
    store.delete(soft).await.expect("deleted");

    // A pass that marks this organisation's contents (one chatbot a batch, so that cursors are used
    // across both shelves), then one that finds every content marked.
    let marked = crate::domain::Description::parse("resealed").expect("a description");
    let pass = |mark: bool| {
        let (marked, changed) = (marked.clone(), Arc::new(AtomicUsize::new(0)));
        let counted = Arc::clone(&changed);
        let reseal: Arc<Reseal> = Arc::new(move |content: &mut Chatbot| {
            if content.organization_id != org || content.config.description == marked {
                return false;
            }
            counted.fetch_add(1, Ordering::Relaxed);
            if mark {
                content.config.description = marked.clone();
            }
            mark
        });
        async move {
            let (mut from, mut rewritten) = (Some(ResealCursor::default()), 0);
            while let Some(cursor) = from {
                let batch = store.reseal(cursor, 1, Arc::clone(&reseal)).await.expect("a batch");
                rewritten += batch.rewritten;
                from = batch.next;
            }
            (changed.load(Ordering::Relaxed), rewritten)
        }
    };
    let (changed, rewritten) = pass(true).await;
    assert!(rewritten >= 4, "the live record, its first revision, the deleted one and its revisions: {rewritten}");
    assert!(changed >= rewritten, "what is written back is what the closure changed: {changed} < {rewritten}");
    assert_eq!(pass(false).await, (0, 0), "a second pass finds every content resealed");

    let now = store.get(org, live.id).await.expect("still there");
    assert_eq!(now.config.description, marked);
    assert_eq!(now.etag(), live.etag(), "resealing is not a change a client sees");
    let first = store.revision(org, live.id, RevisionRef::Number(1)).await.expect("kept");
    assert_eq!(first.chatbot.config.description, marked);
    assert_eq!(first.chatbot.config.name.as_str(), "Resealed", "and only the resealed part of it changed");
    let deleted = store.deleted(org, Filter::default(), None, 10).await.expect("listed");
    assert!(deleted.iter().all(|d| d.chatbot.config.description == marked) && deleted.len() == 1);
}
