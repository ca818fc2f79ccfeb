//! The storage engines through the core crate alone (no binary, no face): the conformance suite on
//! PostgreSQL, and an embedder's view of an engine, whose background work (publishing the change log,
//! pruning) needs no code of the embedder's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatbot_core::store::postgres::{PostgresOptions, PostgresStore};
use chatbot_core::store::{Retention, conformance};
use chatbot_core::{ChatbotDraft, IdempotencyKey, Registry, Rules};
use chatbotd_tests::postgres;
use futures::StreamExt as _;

/// A new, empty database of the shared cluster; `None` with a loud note where PostgreSQL is missing
/// (a failure where `CHATBOTD_TEST_REQUIRE_POSTGRES` is set, as in CI).
fn database() -> Option<String> {
    match postgres::shared() {
        Ok(cluster) => Some(cluster.create_database().expect("a fresh database")),
        Err(why) => {
            assert!(std::env::var_os(postgres::REQUIRE_VAR).is_none(), "PostgreSQL is required: {why}");
            eprintln!("\n!!! SKIPPED on PostgreSQL: {why}\n");
            None
        }
    }
}

async fn connect(url: &str, retention: Retention) -> PostgresStore {
    let options = PostgresOptions { retention, ..PostgresOptions::default() };
    PostgresStore::connect(url, options).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn the_postgres_engine_conforms() {
    let Some(url) = database() else { return };
    conformance::run(&connect(&url, Retention::default()).await).await;
}

fn named(name: &str) -> ChatbotDraft {
    ChatbotDraft { name: Some(name.into()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn an_embedders_watcher_on_postgres_sees_every_replicas_changes_with_no_loop_of_its_own() {
    let Some(url) = database() else { return };
    let watching = Arc::new(Registry::new(connect(&url, Retention::default()).await, Rules::default()));
    let writing = Registry::new(connect(&url, Retention::default()).await, Rules::default());
    let (org, _) = writing.admission().create_api_key("embedder").await.expect("a key");
    let mut watch = watching.watching().watch(org, None).await.expect("a watch");

    let mut created = Vec::new();
    for n in 0..3 {
        created.push(writing.create(org, named(&format!("Embedded {n}"))).await.expect("created").id);
    }
    let mut seen = Vec::new();
    while seen.len() < created.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the other replica's change is published within 10 s, with no publisher of the embedder's")
            .expect("the watch goes on")
            .expect("an event");
        seen.push(event.chatbot_id);
    }
    assert_eq!(seen, created, "in commit order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn the_postgres_engine_forgets_expired_idempotency_keys_by_itself() {
    use chatbot_core::store::ClaimStore as _;
    let Some(url) = database() else { return };
    let retention = Retention { claims: Duration::ZERO, ..Retention::default() };
    let registry = Registry::new(connect(&url, retention).await, Rules::default());
    let (org, _) = registry.admission().create_api_key("expiring").await.expect("a key");
    let key = IdempotencyKey::parse("k").expect("a key");
    registry
        .create_with(org, named("First"), Some(key.clone()), chatbot_core::Provenance::embedded())
        .await
        .expect("created");
    // Another replica, which keeps keys a day, watches the first one's upkeep (every quarter of a
    // second) forget the key, which expired at once.
    let observer = connect(&url, Retention::default()).await;
    assert!(observer.claimed(org, &key).await.expect("read").is_some(), "stored with the write");
    let started = Instant::now();
    while observer.claimed(org, &key).await.expect("read").is_some() {
        assert!(started.elapsed() < Duration::from_secs(10), "the expired key is still stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every scan of `chatbots` in an `EXPLAIN (ANALYZE, FORMAT JSON)` plan: (node type, index, rows read).
fn chatbot_scans(node: &serde_json::Value, found: &mut Vec<(String, String, u64)>) {
    if node["Relation Name"] == "chatbots" {
        found.push((
            node["Node Type"].as_str().unwrap_or_default().to_owned(),
            node["Index Name"].as_str().unwrap_or_default().to_owned(),
            node["Actual Rows"].as_u64().unwrap_or_default() * node["Actual Loops"].as_u64().unwrap_or(1),
        ));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        chatbot_scans(child, found);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_listing_page_reads_only_its_page_through_the_listing_index() {
    let Some(url) = database() else { return };
    drop(connect(&url, Retention::default()).await); // the schema
    let cluster = postgres::shared().expect("the cluster");
    let database = url.rsplit('/').next().expect("a database name");
    // 40,000 chatbots of 20 organisations, every flag combination, then fresh statistics.
    let org = "01a22cd1-0000-7000-8000-000000000007";
    cluster
        .psql(
            database,
            "INSERT INTO organisations (id, name) SELECT ('01a22cd1-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, \
                 'org ' || g FROM generate_series(0, 19) g;
                 INSERT INTO chatbots (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config)
                 SELECT gen_random_uuid(), ('01a22cd1-0000-7000-8000-' || lpad((g % 20)::text, 12, '0'))::uuid,
                        'bot-' || g, g % 2 = 0, g % 3 <> 0, now() - g * interval '1 second', now(), 1, '{}'::jsonb
                 FROM generate_series(1, 40000) g;
                 ANALYZE chatbots;",
        )
        .expect("seeded");
    let filters = [
        chatbot_core::store::Filter::default(),
        chatbot_core::store::Filter { is_public: Some(true), active: None },
        chatbot_core::store::Filter { is_public: Some(false), active: Some(true) },
    ];
    for filter in filters {
        let limit = 21u64;
        let sql = chatbot_core::store::postgres::listing_statement(filter, false);
        let plan = cluster
            .psql(
                database,
                &format!("PREPARE page(uuid, bigint) AS {sql}; EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page('{org}', {limit});"),
            )
            .expect("explained");
        // psql prints PREPARE's command tag first.
        let json = plan.find('[').map_or(plan.as_str(), |at| &plan[at..]);
        let plan: serde_json::Value = serde_json::from_str(json.trim()).expect("a JSON plan");
        let mut scans = Vec::new();
        chatbot_scans(&plan[0]["Plan"], &mut scans);
        let listing: Vec<_> = scans.iter().filter(|(_, index, _)| index == "chatbots_listing").collect();
        assert_eq!(
            listing.len(),
            filter.flag_combinations().len(),
            "one listing-index scan per combination: {scans:?}"
        );
        for (kind, index, _) in &scans {
            assert!(
                kind.starts_with("Index"),
                "{filter:?}: chatbots read by a {kind} ({index}), not an index: {scans:?}"
            );
        }
        let read: u64 = listing.iter().map(|(_, _, rows)| rows).sum();
        assert!(
            read <= limit * filter.flag_combinations().len() as u64,
            "{filter:?}: a page of {limit} read {read} rows of the 2,000 the organisation has: {scans:?}"
        );
    }
}
