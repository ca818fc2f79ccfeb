//! PostgreSQL lets several stateless replicas serve one database: whichever replica a client reaches,
//! it sees the same chatbots, the same uniqueness and the same etags; a replica killed mid-load loses
//! nothing it acknowledged; replicas starting together agree; keys can be made while they serve.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Storage, TestApp, create_key, postgres_only, spawn_without_key};

/// Two replicas over one fresh database, sharing one key.
async fn two_replicas() -> Option<(TestApp, TestApp)> {
    let storage = postgres_only()?;
    let key = "replica-test-key-0123456789abcdef".to_owned();
    let a = TestApp::spawn_on(storage.clone(), key.clone(), &[]).await;
    let b = TestApp::spawn_on(storage, key, &[]).await;
    Some((a, b))
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn what_one_replica_writes_the_other_reads_lists_and_deletes() {
    let Some((a, b)) = two_replicas().await else { return };
    let id = a.create_named("Shared", json!({"slug": "shared-bot"})).await;
    let read = b.get(&id).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["chatbot"]["slug"], "shared-bot");
    assert_eq!(b.list("").await.body["chatbots"][0]["id"], id.as_str());

    let updated = b.patch(&id, &json!({"description": "changed on B"})).await;
    assert_eq!(a.get(&id).await.header("etag"), updated.header("etag"), "one etag, whichever replica answers");

    assert_eq!(b.delete(&id).await.status, StatusCode::OK);
    assert_eq!(a.get(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(a.post(&json!({"name": "Again", "slug": "shared-bot"})).await.status, StatusCode::CREATED);
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn of_32_creates_of_one_slug_spread_over_two_replicas_exactly_one_wins() {
    let Some((a, b)) = two_replicas().await else { return };
    let (a, b) = (&a, &b);
    let attempts = (0..32).map(|i| async move {
        let replica = if i % 2 == 0 { a } else { b };
        replica.post(&json!({"name": format!("Racer {i}"), "slug": "the-one-slug"})).await
    });
    let answers = join_all(attempts).await;
    let won = answers.iter().filter(|x| x.status == StatusCode::CREATED).count();
    let lost = answers.iter().filter(|x| x.status == StatusCode::CONFLICT && x.code() == "slug_taken").count();
    assert_eq!((won, lost), (1, 31), "{:?}", answers.iter().map(|x| x.status).collect::<Vec<_>>());
    assert_eq!(b.list("").await.body["chatbots"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn of_16_if_match_updates_spread_over_two_replicas_exactly_one_wins() {
    let Some((a, b)) = two_replicas().await else { return };
    let created = a.post(&json!({"name": "Contested"})).await;
    let id = created.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    let etag = created.header("etag").expect("an etag");
    let (a, b, id, etag) = (&a, &b, id.as_str(), etag.as_str());
    let updates = (0..16).map(|i| async move {
        let replica = if i % 2 == 0 { a } else { b };
        replica.patch_if_match(id, etag, &json!({"description": format!("writer {i}")})).await.status
    });
    let statuses = join_all(updates).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!((won, refused), (1, 15), "{statuses:?}");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_replica_killed_under_load_loses_nothing_either_replica_acknowledged() {
    let Some((a, b)) = two_replicas().await else { return };
    let (a_rest, b_rest, key) = (a.rest.clone(), b.rest.clone(), a.key.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (rest, key, stop) =
                (if writer % 2 == 0 { &a_rest } else { &b_rest }.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({"name": format!("Load {writer}-{n}")});
                    let sent = http.post(format!("{rest}/api/external/chatbots")).header("x-api-key", &key).json(&body);
                    match sent.send().await {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            let body: serde_json::Value = response.json().await.expect("a JSON answer");
                            acknowledged.push(body["chatbot"]["id"].as_str().expect("an id").to_owned());
                        }
                        Ok(response) => assert!(response.status().is_success(), "refused: {}", response.status()),
                        // The killed replica's connections break: those writes were never acknowledged.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = a.kill9().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("a writer"));
    }
    assert!(acknowledged.len() > 20, "the load ran ({} creates)", acknowledged.len());
    for id in &acknowledged {
        assert_eq!(b.get(id).await.status, StatusCode::OK, "{id} was acknowledged, then lost");
    }
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn replicas_starting_at_once_agree_on_the_schema_the_organisation_and_the_key() {
    let Some(storage) = postgres_only() else { return };
    let key = "same-key-for-every-replica-0123456789".to_owned();
    let replicas = join_all((0..4).map(|_| TestApp::spawn_on(storage.clone(), key.clone(), &[]))).await;
    let orgs: Vec<String> = join_all(replicas.iter().map(|r| async move {
        let created = r.post(&json!({"name": "Probe"})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body["chatbot"]["organization_id"].as_str().expect("an organisation").to_owned()
    }))
    .await;
    assert!(orgs.windows(2).all(|w| w[0] == w[1]), "one default organisation: {orgs:?}");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn of_replicas_starting_at_once_on_an_empty_database_exactly_one_prints_a_first_key() {
    let Some(storage) = postgres_only() else { return };
    let starts = (0..3).map(|_| spawn_without_key(&storage));
    let started = join_all(starts).await;
    let keys: Vec<&String> = started.iter().filter_map(|(_, key, _)| key.as_ref()).collect();
    assert_eq!(keys.len(), 1, "exactly one replica made the first key");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn keys_made_while_replicas_serve_work_at_once_on_every_replica() {
    let Some((a, b)) = two_replicas().await else { return };
    let storage: Storage = a.storage.clone();
    let globex = create_key(&storage, "globex").await;
    for replica in [&a, &b] {
        let created =
            replica.call(Method::POST, "/api/external/chatbots", Some(&globex), Some(&json!({"name": "G"}))).await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let theirs = a.call(Method::GET, "/api/external/chatbots", Some(&globex), None).await;
    assert_eq!(theirs.body["chatbots"].as_array().map(Vec::len), Some(2));
    assert_eq!(b.list("").await.body["chatbots"], json!([]), "the default organisation sees none of them");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_key_revoked_through_one_replica_stops_at_once_there_and_on_the_other_within_a_second() {
    let Some(storage) = postgres_only() else { return };
    let key = "replica-test-key-0123456789abcdef".to_owned();
    let a = TestApp::spawn_on(storage.clone(), key.clone(), &["--admin-token", crate::admin::TOKEN]).await;
    let b = TestApp::spawn_on(storage, key, &[]).await;
    let created = crate::admin::cli(&a, &["keys", "create", "--org", "acme"]).await;
    let acme = created.lines().last().expect("the key").to_owned();
    let key_id = created.lines().find_map(|l| l.strip_prefix("key id ")).expect("its id").to_owned();
    for replica in [&a, &b] {
        // Each replica admits it, and so keeps it in its cache of admitted keys.
        assert_eq!(replica.call(Method::GET, "/api/external/chatbots", Some(&acme), None).await.status, StatusCode::OK);
    }

    crate::admin::cli(&a, &["keys", "revoke", &key_id]).await;
    let revoked = std::time::Instant::now();
    let on_a = a.call(Method::GET, "/api/external/chatbots", Some(&acme), None).await;
    assert_eq!(on_a.status, StatusCode::UNAUTHORIZED, "at once on the replica that revoked it");
    loop {
        let on_b = b.call(Method::GET, "/api/external/chatbots", Some(&acme), None).await;
        if on_b.status == StatusCode::UNAUTHORIZED {
            break;
        }
        // The promise is one second; the slack is for a loaded test machine.
        assert!(revoked.elapsed() < Duration::from_millis(2_500), "the other replica still admits a revoked key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.list("").await.status, StatusCode::OK, "other keys go on working");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_database_that_may_lose_acknowledged_writes_is_warned_about_loudly() {
    let Some(storage) = postgres_only() else { return };
    let cluster = chatbotd_tests::postgres::shared().expect("the cluster");
    let database = storage.database().expect("a database").to_owned();
    let durable = TestApp::spawn_on(storage.clone(), "durable-key-0123456789abcdef".into(), &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the log is written by its own thread
    assert!(!durable.log().contains("synchronous_commit=off"), "no warning while durable");
    drop(durable);
    cluster.psql(&database, &format!("ALTER DATABASE \"{database}\" SET synchronous_commit = off")).expect("set");
    let app = TestApp::spawn_on(storage, "durable-key-0123456789abcdef".into(), &[]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.log().contains("synchronous_commit=off") {
        assert!(std::time::Instant::now() < deadline, "no warning: {}", app.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.log().contains("can lose writes chatbotd has acknowledged"), "{}", app.log());
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn an_idempotency_key_replays_through_either_replica_and_makes_one_chatbot() {
    let Some((a, b)) = two_replicas().await else { return };
    let body = json!({"name": "Once across replicas"});
    let first = a.post_with_key("across-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replayed = b.post_with_key("across-1", &body).await;
    assert_eq!(replayed.header("idempotent-replayed").as_deref(), Some("true"), "the other replica replays it");
    assert_eq!(replayed.body, first.body);

    // Sent to both at once: one chatbot, both answers the same.
    let (x, y) = tokio::join!(a.post_with_key("across-2", &body), b.post_with_key("across-2", &body));
    assert_eq!((x.status, y.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(x.body["chatbot"]["id"], y.body["chatbot"]["id"]);
    assert_eq!(a.list("").await.body["chatbots"].as_array().map(Vec::len), Some(2), "two keys, two chatbots");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_watcher_resumes_on_another_replica_where_it_left_off() {
    let Some((a, b)) = two_replicas().await else { return };
    let mut on_a = crate::changes::SseStream::open(&a, &a.key, None).await;
    let mut written = Vec::new();
    for n in 0..3 {
        written.push(a.create_named(&format!("Before {n}"), json!({})).await);
    }
    let seen = [on_a.next().await, on_a.next().await];
    drop(on_a);
    for n in 0..3 {
        written.push(b.create_named(&format!("After {n}"), json!({})).await);
    }
    let mut on_b = crate::changes::SseStream::open(&b, &b.key, Some(&seen[1].id)).await;
    let mut rest = Vec::new();
    for _ in 2..written.len() {
        rest.push(on_b.next().await);
    }
    let ids: Vec<String> = rest.iter().map(|e| e.json()["chatbot_id"].as_str().expect("an id").to_owned()).collect();
    assert_eq!(ids, written[2..], "exactly what came after the token, in order, once each");
}
