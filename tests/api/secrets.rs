//! Stored secrets sealed at rest: a chatbot's `openai_api_key` appears in clear in no file of the sled
//! data directory, no column of any PostgreSQL table, no export without `--decrypt`, no log line and no
//! metric; PostgreSQL replicas refuse to start without a keyring unless told to store secrets in clear;
//! a rotation under write load loses no secret and leaves none under the old key; a sealed value copied
//! to another chatbot does not open.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin::TOKEN;
use crate::helpers::{Engine, Storage, TEST_KEYRING, TestApp, binary, fresh_key};

/// A provider key no other test uses, so that finding it anywhere means this test leaked it.
fn provider_key(tag: &str) -> String {
    format!("sk-proj-{tag}-{}", uuid::Uuid::new_v4().simple())
}

async fn create(app: &TestApp, name: &str, key: &str) -> Value {
    let answer = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .json(&json!({"name": name, "openai_api_key": key}))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::CREATED);
    answer.json::<Value>().await.expect("JSON")["chatbot"].clone()
}

async fn patch_key(app: &TestApp, id: &str, key: &str) {
    let answer = app
        .http
        .patch(format!("{}/api/external/chatbot/{id}", app.rest))
        .header("x-api-key", &app.key)
        .json(&json!({"openai_api_key": key}))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// `chatbotd export` of `store_args`, with `extra` flags: (success, stdout, stderr).
async fn export(store_args: &[std::ffi::OsString], extra: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(binary())
        .arg("export")
        .args(store_args)
        .args(extra)
        .output()
        .await
        .expect("export runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    (output.status.success(), text(output.stdout), text(output.stderr))
}

async fn a_secret_is_in_clear_in_no_file_export_log_or_metric_and_only_a_decrypting_export_opens_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (first, second, binned) = (provider_key("first"), provider_key("second"), provider_key("binned"));
    let kept = create(&app, "Sealed", &first).await;
    assert_eq!(kept["openai_api_key"], format!("sk-...{}", &first[first.len() - 4..]), "shown masked");
    let id = kept["id"].as_str().expect("an id").to_owned();
    patch_key(&app, &id, &second).await; // the first key now lives in a revision
    let gone = create(&app, "Deleted", &binned).await;
    let deleted = app
        .http
        .delete(format!("{}/api/external/chatbot/{}", app.rest, gone["id"].as_str().expect("an id")))
        .header("x-api-key", &app.key)
        .send()
        .await
        .expect("answered");
    assert!(deleted.status().is_success());
    let metrics =
        app.http.get(format!("{}/metrics", app.rest)).send().await.expect("metrics").text().await.expect("text");
    let storage = app.storage.clone();
    let database = storage.database().map(str::to_owned);
    tokio::time::sleep(Duration::from_millis(200)).await; // the access log is written by its own thread
    let log = app.log();
    assert!(app.terminate().await.success());

    for secret in [&first, &second, &binned] {
        assert!(!log.contains(secret.as_str()), "the log holds a secret");
        assert!(!metrics.contains(secret.as_str()), "the metrics hold a secret");
        match (&storage, &database) {
            (Storage::Sled(dir), _) => {
                let found = files_holding(dir.path(), secret);
                assert!(found.is_empty(), "files of the data directory hold a secret in clear: {found:?}");
            }
            (_, Some(database)) => {
                let cluster = chatbotd_tests::postgres::shared().expect("the cluster");
                let dump = cluster.dump(database).expect("pg_dump");
                assert!(dump.contains("key_id"), "the dump holds the sealed values");
                assert!(!dump.contains(secret.as_str()), "pg_dump holds a secret in clear");
            }
            _ => unreachable!("PostgreSQL storage has a database"),
        }
    }
    let (ok, sealed, said) = export(&storage.args(), &[]).await;
    assert!(ok, "{said}");
    assert!(sealed.contains("\"key_id\""), "an export carries sealed values with their key ids");
    let (ok, opened, said) = export(&storage.args(), &["--decrypt"]).await;
    assert!(ok, "{said}");
    for secret in [&first, &second, &binned] {
        assert!(!sealed.contains(secret.as_str()), "an export without --decrypt holds a secret in clear");
        assert!(
            opened.contains(secret.as_str()),
            "export --decrypt opens every stored value (live, revision, deleted)"
        );
    }
}

#[tokio::test]
async fn a_secret_is_sealed_everywhere_on_sled() {
    a_secret_is_in_clear_in_no_file_export_log_or_metric_and_only_a_decrypting_export_opens_it(Engine::Sled).await;
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_secret_is_sealed_everywhere_on_postgres() {
    if !Engine::Postgres.available() {
        return;
    }
    a_secret_is_in_clear_in_no_file_export_log_or_metric_and_only_a_decrypting_export_opens_it(Engine::Postgres).await;
}

/// The URL of a fresh database of the shared cluster, and the cluster.
fn fresh_database() -> (String, &'static chatbotd_tests::postgres::Cluster) {
    let cluster = chatbotd_tests::postgres::shared().expect("the cluster");
    (cluster.create_database().expect("a database"), cluster)
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_replica_without_a_keyring_refuses_to_start_unless_told_and_the_first_rotation_seals_what_it_wrote() {
    if !Engine::Postgres.available() {
        return;
    }
    let (url, cluster) = fresh_database();
    let database = url.rsplit('/').next().expect("a name").to_owned();
    let refused = tokio::process::Command::new(binary())
        .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--database-url", &url])
        .env_remove("CHATBOTD_SECRET_KEYS")
        .output()
        .await
        .expect("runs");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("--allow-plaintext-secrets"), "{said}");

    // Told to: it writes in clear (as every version before sealing did), and says so loudly.
    let plain = provider_key("plain");
    let storage = Storage::Postgres { url: url.clone() };
    let key = fresh_key();
    let app =
        TestApp::spawn_on(storage.clone(), key.clone(), &["--secret-keys", "", "--allow-plaintext-secrets"]).await;
    let id = create(&app, "Plain", &plain).await["id"].as_str().expect("an id").to_owned();
    assert!(app.log().contains("STORED SECRETS ARE KEPT IN CLEAR"), "{}", app.log());
    assert!(app.terminate().await.success());
    assert!(cluster.dump(&database).expect("pg_dump").contains(&plain), "stored in clear");

    // Given a keyring: the census sees it in clear, the first rotation seals it, and it opens again.
    let app = TestApp::spawn_on(storage.clone(), key, &["--admin-token", TOKEN]).await;
    let healthz = census(&app, |secrets| secrets["in_clear"] == 1).await;
    assert_eq!(healthz["secrets"]["sealed_under_current_key"], 0, "{healthz}");
    let rotated = rotate(&app).await;
    assert!(rotated.contains("in clear: 0"), "{rotated}");
    let dump = cluster.dump(&database).expect("pg_dump");
    assert!(!dump.contains(&plain), "sealed by the rotation");
    let (ok, opened, said) = export(&storage.args(), &["--decrypt"]).await;
    assert!(ok && opened.contains(&plain) && opened.contains(&id), "{said}");
}

/// `/healthz` once its secrets census satisfies `done` (the census is taken in the background).
async fn census(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let health: Value =
            app.http.get(format!("{}/healthz", app.rest)).send().await.expect("answered").json().await.expect("JSON");
        if done(&health["secrets"]) {
            return health;
        }
        assert!(std::time::Instant::now() < deadline, "the census never came: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `chatbotd secrets rotate` through `app`'s admin API: its stdout (the census) and stderr (progress).
async fn rotate(app: &TestApp) -> String {
    let output = tokio::process::Command::new(binary())
        .args(["secrets", "rotate", "--batch-size", "7", "--server", &app.grpc, "--admin-token", TOKEN])
        .output()
        .await
        .expect("runs");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{out}\n{err}");
    assert!(err.contains("resealed"), "progress is shown: {err}");
    out.into_owned()
}

const NEW_KEY: &str = "rotated-1=cm90YXRlZC1rZXktZm9yLWNoYXRib3RkLXRlc3RzISE=";

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_rotation_under_write_load_loses_no_secret_and_leaves_none_under_the_old_key() {
    if !Engine::Postgres.available() {
        return;
    }
    let (url, cluster) = fresh_database();
    let database = url.rsplit('/').next().expect("a name").to_owned();
    let storage = Storage::Postgres { url: url.clone() };
    let key = fresh_key();
    let app = TestApp::spawn_on(storage.clone(), key.clone(), &[]).await;
    let mut written = std::collections::BTreeMap::new();
    for n in 0..40 {
        let secret = provider_key(&format!("old{n}"));
        let id = create(&app, &format!("Before {n}"), &secret).await["id"].as_str().expect("an id").to_owned();
        written.insert(id, secret);
    }
    drop(app);

    // The new key first, the old one still there to open; writers go on while the rotation runs.
    let rotating = format!("{NEW_KEY}\n{TEST_KEYRING}");
    let app = TestApp::spawn_on(storage.clone(), key, &["--secret-keys", &rotating, "--admin-token", TOKEN]).await;
    let ids: Vec<String> = written.keys().cloned().collect();
    let writers = {
        let (http, rest, api_key) = (app.http.clone(), app.rest.clone(), app.key.clone());
        tokio::spawn(async move {
            let mut changed = Vec::new();
            for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 2 == 0) {
                let secret = provider_key(&format!("during{n}"));
                let answer = http
                    .patch(format!("{rest}/api/external/chatbot/{id}"))
                    .header("x-api-key", &api_key)
                    .json(&json!({"openai_api_key": secret}))
                    .send()
                    .await
                    .expect("answered");
                assert_eq!(answer.status(), StatusCode::OK);
                changed.push((id.clone(), secret));
            }
            changed
        })
    };
    let rotated = rotate(&app).await;
    for (id, secret) in writers.await.expect("the writers finish") {
        written.insert(id, secret);
    }
    assert!(rotated.contains("under older keys: 0") && rotated.contains("in clear: 0"), "{rotated}");
    drop(app);

    // Only the new key now: every secret opens, each the last one written.
    let new_only = [std::ffi::OsString::from("--database-url"), url.into(), "--secret-keys".into(), NEW_KEY.into()];
    let (ok, opened, said) = export(&new_only, &["--decrypt"]).await;
    assert!(ok, "every value opens with the new key alone: {said}");
    let chatbots: Vec<Value> = opened
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a record"))
        .filter(|record| record["kind"] == "chatbot")
        .collect();
    assert_eq!(chatbots.len(), written.len());
    for chatbot in &chatbots {
        let id = chatbot["id"].as_str().expect("an id");
        assert_eq!(chatbot["config"]["openai_api_key"].as_str(), Some(written[id].as_str()), "{id}");
    }

    // A sealed value copied to another chatbot's row does not open there.
    let (a, b) = (&chatbots[0]["id"], &chatbots[1]["id"]);
    cluster
        .psql(
            &database,
            &format!(
                "UPDATE chatbots SET config = jsonb_set(config, '{{openai_api_key}}', \
                 (SELECT config->'openai_api_key' FROM chatbots WHERE id = '{}')) WHERE id = '{}'",
                a.as_str().expect("an id"),
                b.as_str().expect("an id")
            ),
        )
        .expect("copied");
    let (ok, _, said) = export(&new_only, &["--decrypt"]).await;
    assert!(!ok && said.contains("does not belong to this chatbot"), "{said}");
}

/// The start-up pass over stored secrets (sled) reads nothing after a clean shutdown under the same
/// key, and reports the census recorded then, with its time; it looks again after a `kill -9` that
/// followed a write, and under a new first key.
#[tokio::test]
async fn a_restart_after_a_clean_shutdown_reads_no_stored_secret_and_one_after_a_crash_looks_again() {
    const NOT_READ: &str = "stored secrets unchanged since a clean shutdown under the same key: not read";
    let app = TestApp::spawn(Engine::Sled).await;
    let first = census(&app, |s| s.is_object()).await;
    assert!(!app.log().contains(NOT_READ), "a first start looks: {}", app.log());
    create(&app, "Sealed", &provider_key("mark")).await;
    let (key, storage) = (app.key.clone(), app.storage.clone());
    assert!(app.terminate().await.success());

    // Cleanly stopped after writing only under its key: the next start trusts the mark, reads nothing,
    // and reports the census recorded with it (nothing stale; its count and time are the first's).
    let app = TestApp::spawn_on(storage, key.clone(), &[]).await;
    let unchanged = census(&app, |s| s.is_object()).await;
    assert_eq!(unchanged["secrets"], first["secrets"], "{unchanged}");
    assert!(unchanged["secrets"]["counted_at"].is_string(), "{unchanged}");
    assert!(app.log().contains(NOT_READ), "{}", app.log());

    // A write, then a crash: the mark no longer matches the store, so the start looks and counts both.
    create(&app, "Written before the crash", &provider_key("mark")).await;
    let storage = app.kill9().await;
    let app = TestApp::spawn_on(storage, key.clone(), &[]).await;
    let recounted = census(&app, |s| s["sealed_under_current_key"] == 2).await;
    assert_ne!(recounted["secrets"]["counted_at"], first["secrets"]["counted_at"]);
    assert!(!app.log().contains(NOT_READ), "{}", app.log());
    let storage = app.storage.clone();
    assert!(app.terminate().await.success());

    // A new first key before the data directory's own: the mark is another key's, so the start looks
    // and reseals both values.
    let Storage::Sled(dir) = &storage else { unreachable!("a sled store") };
    let made = std::fs::read_to_string(dir.path().join("secret-keys")).expect("the keyring made on first start");
    let new_first = format!("newer=BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=\n{made}");
    let app = TestApp::spawn_on(storage, key, &["--secret-keys", &new_first]).await;
    census(&app, |s| s["sealed_under_current_key"] == 2 && s["under_older_keys"] == 0).await;
    assert!(!app.log().contains(NOT_READ), "{}", app.log());
}
