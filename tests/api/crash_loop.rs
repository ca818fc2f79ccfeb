//! A crash loop under load, on both engines. Writers create chatbots and change them (PATCH, chat
//! widget, avatar), every write with an idempotency key, while the server is killed with SIGKILL at a
//! random moment. After each restart the writes that were in flight are retried with their keys, and
//! the store is checked whole: every acknowledged write is there as it was acknowledged (its revision
//! holds what its answer showed), every write took effect exactly once, nothing is half there (record,
//! slug index, listing and change log agree), and the change log holds one event per committed write,
//! its positions without gaps. `CHATBOTD_CRASH_CYCLES` (default 3) sets the number of kills, for a soak.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::changes::SseStream;
use crate::helpers::{Answer, Engine, TestApp, on_every_engine};

on_every_engine!(a_kill_9_under_a_write_load_loses_no_acknowledged_write_and_leaves_nothing_half_written);

/// Concurrent writers, each writing to chatbots of its own (so its writes to one are in order).
const WRITERS: usize = 6;

fn cycles() -> usize {
    std::env::var("CHATBOTD_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(3)
}

/// A random number below `n`: the kill's moment and the mix of writes vary from run to run, and
/// every run checks the same invariants.
fn below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

/// One write a writer sends.
#[derive(Debug, Clone)]
enum Write {
    Create { slug: String },
    Patch { id: String, description: String },
    Widget { id: String, header: String },
    Avatar { id: String, shade: [u8; 3] },
}

/// A write and its idempotency key.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    write: Write,
}

/// An acknowledged write: what was sent, and what its answer said.
#[derive(Debug, Clone)]
struct Acked {
    sent: Sent,
    id: String,
    /// The revision its entity tag names.
    revision: u64,
    answer: Value,
}

/// A 2x2 PNG of one colour.
fn png(shade: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let pixels = image::RgbImage::from_fn(2, 2, |_, _| image::Rgb(shade));
    pixels.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encodes");
    bytes
}

/// Sends `sent` to `app`; `None` when no whole answer came back (the server died with it in flight).
async fn send(http: &reqwest::Client, rest: &str, api_key: &str, sent: &Sent) -> Option<Answer> {
    let chatbot = |id: &str, tail: &str| format!("{rest}/api/external/chatbot/{id}{tail}");
    let request = match &sent.write {
        Write::Create { slug } => {
            http.post(format!("{rest}/api/external/chatbots")).json(&json!({"name": "Crash", "slug": slug}))
        }
        Write::Patch { id, description } => http.patch(chatbot(id, "")).json(&json!({"description": description})),
        Write::Widget { id, header } => http.patch(chatbot(id, "/chat-widget")).json(&json!({"header": header})),
        Write::Avatar { id, shade } => {
            let part = Part::bytes(png(*shade)).file_name("face.png").mime_str("image/png").expect("a media type");
            http.patch(chatbot(id, "/update-avatar")).multipart(Form::new().part("avatar", part))
        }
    };
    let response = request.header("x-api-key", api_key).header("idempotency-key", &sent.key).send().await.ok()?;
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.bytes().await.ok()?;
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).ok()? };
    Some(Answer { status, headers, body })
}

/// The revision an entity tag (`"N-..."`) names.
fn revision_of(answer: &Answer) -> u64 {
    let etag = answer.header("etag").unwrap_or_else(|| panic!("an acknowledged write has an ETag: {answer:?}"));
    etag.trim_matches('"').split('-').next().and_then(|n| n.parse().ok()).expect("an ETag names its revision")
}

/// `answer` to `sent` as an acknowledgement; a refusal fails the test (nothing under this load may
/// be refused).
fn acknowledged(sent: Sent, answer: &Answer) -> Acked {
    assert!(answer.status.is_success(), "a write was refused: {sent:?}: {} {}", answer.status, answer.body);
    let id = match &sent.write {
        Write::Create { .. } => answer.body["chatbot"]["id"].as_str().expect("an id").to_owned(),
        Write::Patch { id, .. } | Write::Widget { id, .. } | Write::Avatar { id, .. } => id.clone(),
    };
    Acked { sent, id, revision: revision_of(answer), answer: answer.body.clone() }
}

/// One writer until the server dies: its acknowledged writes, and the write in flight at the end.
async fn writer(
    http: reqwest::Client,
    rest: String,
    api_key: String,
    name: String,
    mut own: Vec<String>,
) -> (Vec<Acked>, Sent) {
    let mut acked = Vec::new();
    for n in 0u32.. {
        let key = format!("{name}-{n}");
        let write = match (own.is_empty(), below(4)) {
            (true, _) | (false, 0) => Write::Create { slug: key.clone() },
            (false, kind) => {
                let id = own[below(own.len() as u64) as usize].clone();
                match kind {
                    1 => Write::Patch { id, description: key.clone() },
                    2 => Write::Widget { id, header: key.clone() },
                    _ => Write::Avatar { id, shade: [(n >> 16) as u8, (n >> 8) as u8, n as u8] },
                }
            }
        };
        let sent = Sent { key, write };
        match send(&http, &rest, &api_key, &sent).await {
            None => return (acked, sent),
            Some(answer) => {
                let ack = acknowledged(sent, &answer);
                if matches!(ack.sent.write, Write::Create { .. }) {
                    own.push(ack.id.clone());
                }
                acked.push(ack);
            }
        }
    }
    unreachable!("a writer writes until the server dies")
}

async fn a_kill_9_under_a_write_load_loses_no_acknowledged_write_and_leaves_nothing_half_written(engine: Engine) {
    let flags = ["--rate-limit", "0"];
    let mut app = TestApp::spawn_on(crate::helpers::Storage::new(engine), crate::helpers::fresh_key(), &flags).await;
    let mut known: BTreeMap<String, Vec<Acked>> = BTreeMap::new();
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); WRITERS];
    let (mut total_acked, mut in_flight_committed) = (0usize, 0usize);
    for cycle in 0..cycles() {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let name = format!("crash-{w}-{cycle}");
                tokio::spawn(writer(app.http.clone(), app.rest.clone(), app.key.clone(), name, owned[w].clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + below(1_200))).await;
        let key = app.key.clone();
        let storage = app.kill9().await;
        let mut in_flight = Vec::new();
        for (w, writer) in writers.into_iter().enumerate() {
            let (acked, pending) = writer.await.expect("a writer ends when the server dies");
            total_acked += acked.len();
            for ack in acked {
                record(&mut known, &mut owned[w], ack);
            }
            in_flight.push((w, pending));
        }

        // Restarted: each write that was in flight is retried with its key, and takes effect once.
        app = TestApp::spawn_on(storage, key, &flags).await;
        for (w, sent) in in_flight {
            let answer = send(&app.http, &app.rest, &app.key, &sent).await.expect("the retry is answered");
            in_flight_committed += usize::from(answer.header("idempotent-replayed").as_deref() == Some("true"));
            record(&mut known, &mut owned[w], acknowledged(sent, &answer));
        }
        check(&app, &mut known, cycle).await;
    }
    eprintln!(
        "crash loop on {engine:?}: {} kills, {total_acked} writes acknowledged under load, {in_flight_committed} \
         in-flight writes found committed on retry, {} chatbots, nothing lost",
        cycles(),
        known.len()
    );
}

/// Keeps `ack` among its chatbot's acknowledged writes, and a created chatbot among its writer's own.
fn record(known: &mut BTreeMap<String, Vec<Acked>>, own: &mut Vec<String>, ack: Acked) {
    if matches!(ack.sent.write, Write::Create { .. }) {
        own.push(ack.id.clone());
    }
    known.entry(ack.id.clone()).or_default().push(ack);
}

/// `chatbot` with its avatar URL's origin dropped: public URLs start with the REST address, which
/// each restart picks anew.
fn without_origin(chatbot: &Value) -> Value {
    let mut chatbot = chatbot.clone();
    if let Some(url) = chatbot["settings"]["avatar"].as_str() {
        let path = url.find("/api/public/").map_or(url, |at| &url[at..]).to_owned();
        chatbot["settings"]["avatar"] = Value::String(path);
    }
    chatbot
}

/// Checks the whole store against what was acknowledged.
async fn check(app: &TestApp, known: &mut BTreeMap<String, Vec<Acked>>, cycle: usize) {
    // Each chatbot is at the revision its acknowledged writes made, one each, in order, and each of
    // those revisions holds what its answer showed.
    for (id, acks) in known.iter() {
        let numbers: Vec<u64> = acks.iter().map(|a| a.revision).collect();
        let expected: Vec<u64> = (1..=acks.len() as u64).collect();
        assert_eq!(numbers, expected, "chatbot {id}: one revision per write, in order: {acks:#?}");
        let current = app.get(id).await;
        assert_eq!(current.status, StatusCode::OK, "chatbot {id} was lost");
        assert_eq!(
            revision_of(&current),
            acks.len() as u64,
            "chatbot {id}: each acknowledged write took effect once (fewer: one was lost; more: one was applied twice)"
        );
        for ack in acks {
            let path = format!("/api/external/chatbot/{id}/revisions/{}", ack.revision);
            let stored = app.call(reqwest::Method::GET, &path, Some(&app.key), None).await;
            assert_eq!(stored.status, StatusCode::OK, "{path}");
            let content = &stored.body["revision"]["chatbot"];
            match &ack.sent.write {
                Write::Create { .. } | Write::Patch { .. } | Write::Avatar { .. } => {
                    assert_eq!(
                        without_origin(content),
                        without_origin(&ack.answer["chatbot"]),
                        "{path} holds what its answer showed"
                    )
                }
                Write::Widget { header, .. } => {
                    assert_eq!(content["settings"]["snippet"]["header"], header.as_str(), "{path}");
                    assert_eq!(ack.answer["chat_widget_config"]["header"], header.as_str(), "{path}");
                }
            }
        }
    }

    // The listing holds exactly these chatbots, as a read of each shows them.
    let listed: BTreeMap<String, Value> = app
        .list_all()
        .await
        .into_iter()
        .map(|item| (item["id"].as_str().expect("an id").to_owned(), item["slug"].clone()))
        .collect();
    let ids: BTreeSet<&String> = known.keys().collect();
    assert_eq!(listed.keys().collect::<BTreeSet<_>>(), ids, "after kill {cycle}: the listing and the records agree");

    // Every slug is held by its chatbot in the slug index.
    for (id, slug) in &listed {
        let taken = app.post(&json!({"name": "Taken?", "slug": slug})).await;
        assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "slug_taken"), "{id}'s slug {slug}");
    }

    // The change log, from its start: one event per committed write, positions c1, c2, ... without a
    // gap, each chatbot's revisions in order; then a marker write is the very next event (nothing
    // else is in the log).
    let total: usize = known.values().map(Vec::len).sum();
    let mut log = SseStream::open(app, &app.key, Some("c0")).await;
    let events = log.take(total).await;
    let positions: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let expected: Vec<String> = (1..=total).map(|n| format!("c{n:x}")).collect();
    assert_eq!(positions, expected, "after kill {cycle}: the log's positions have no gaps");
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &events {
        let data = event.json();
        let id = data["chatbot_id"].as_str().expect("a chatbot id").to_owned();
        seen.entry(id).or_default().push(data["revision"].as_u64().expect("a revision"));
    }
    let made: BTreeMap<String, Vec<u64>> =
        known.iter().map(|(id, acks)| (id.clone(), acks.iter().map(|a| a.revision).collect())).collect();
    assert_eq!(seen, made, "after kill {cycle}: one event per committed write, each chatbot's in order");
    let marker = Sent { key: format!("marker-{cycle}"), write: Write::Create { slug: format!("marker-{cycle}") } };
    let answer = send(&app.http, &app.rest, &app.key, &marker).await.expect("answered");
    let marker = acknowledged(marker, &answer);
    let next = log.next().await;
    assert_eq!(next.id, format!("c{:x}", total + 1), "nothing else is in the log");
    assert_eq!(next.json()["chatbot_id"].as_str(), Some(marker.id.as_str()));
    known.entry(marker.id.clone()).or_default().push(marker);
}
