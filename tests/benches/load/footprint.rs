//! Footprint: resident memory of the server, bytes on disk, and time from start to ready, with many
//! chatbots stored: at the first start of a server over them (which reads every stored record once, to
//! seal and count secrets), and at a start after its clean stop (which finds nothing changed and reads
//! none). The chatbots are created through the core library (the same rules and store as the
//! service, without the network, so that a million take minutes rather than an hour). Then memory
//! under writes: the largest size written again through the service's REST face, with the resident
//! memory sampled all along, to show that it stays within sled's page cache plus an overhead.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatbot_core::blocking::Registry;
use chatbot_core::{ApiKey, Rules};
use serde::Serialize;

use crate::drive::example_draft;
use crate::servers::{KEY, chatbotd_command};

/// Footprint with `chatbots` stored.
#[derive(Debug, Serialize)]
pub struct Footprint {
    pub chatbots: usize,
    pub disk_bytes: u64,
    pub disk_bytes_per_chatbot: f64,
    pub start_to_ready_ms: f64,
    pub rss_ready_bytes: u64,
    pub rss_after_reads_bytes: u64,
    pub populate_per_second: f64,
    /// After a clean stop of that first start (once its census was taken), a start again.
    pub restart_to_ready_ms: f64,
    pub rss_restart_ready_bytes: u64,
}

/// A server over `dir`, started and waited for until `/healthz` answers 200: the process, its
/// REST address and how long that took.
async fn start(dir: &Path) -> anyhow::Result<(tokio::process::Child, std::net::SocketAddr, f64)> {
    let started = Instant::now();
    let mut command = chatbotd_command(&["--data-dir".as_ref(), dir.as_os_str()]);
    let mut child =
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).kill_on_drop(true).spawn()?;
    let announced = chatbotd_tests::announced(&mut child, &["REST"], Duration::from_secs(600)).await?;
    let rest = announced.addr("REST");
    let http = reqwest::Client::new();
    let healthz = format!("http://{rest}/healthz");
    while !http.get(&healthz).send().await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok((child, rest, started.elapsed().as_secs_f64() * 1000.0))
}

/// Waits until `rest`'s census of stored secrets is taken, then stops the server with SIGTERM.
async fn stop_cleanly(mut child: tokio::process::Child, rest: std::net::SocketAddr) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    loop {
        let health: serde_json::Value = http.get(format!("http://{rest}/healthz")).send().await?.json().await?;
        if health["secrets"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the server is gone"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)?;
    anyhow::ensure!(child.wait().await?.success(), "the server stopped with an error");
    Ok(())
}

pub async fn measure(sizes: &[usize]) -> anyhow::Result<Vec<Footprint>> {
    let dir = tempfile::tempdir()?;
    let mut stored = 0usize;
    let mut results = Vec::new();
    for &size in sizes {
        let started = Instant::now();
        let sample = populate(dir.path(), stored, size)?;
        let populate_per_second = (size - stored) as f64 / started.elapsed().as_secs_f64();
        stored = size;
        let disk_bytes = disk_usage(dir.path())?;

        let (child, rest, start_to_ready_ms) = start(dir.path()).await?;
        let pid = child.id().unwrap_or_default();
        let http = reqwest::Client::new();
        let rss_ready_bytes = rss(pid)?;
        for id in &sample {
            let response =
                http.get(format!("http://{rest}/api/external/chatbot/{id}")).header("x-api-key", KEY).send().await?;
            anyhow::ensure!(response.status().is_success(), "a stored chatbot could not be read");
        }
        let rss_after_reads_bytes = rss(pid)?;
        stop_cleanly(child, rest).await?;
        let (mut child, _, restart_to_ready_ms) = start(dir.path()).await?;
        let rss_restart_ready_bytes = rss(child.id().unwrap_or_default())?;
        child.kill().await?;
        eprintln!(
            "# footprint at {size}: {} MB on disk, ready in {start_to_ready_ms:.0} ms, again in {restart_to_ready_ms:.0} ms",
            disk_bytes / 1_000_000
        );
        results.push(Footprint {
            chatbots: size,
            disk_bytes,
            disk_bytes_per_chatbot: disk_bytes as f64 / size as f64,
            start_to_ready_ms,
            rss_ready_bytes,
            rss_after_reads_bytes,
            populate_per_second,
            restart_to_ready_ms,
            rss_restart_ready_bytes,
        });
    }
    Ok(results)
}

/// The resident memory of the service while `count` chatbots are written through its REST face.
#[derive(Debug, Serialize)]
pub struct WrittenFootprint {
    pub chatbots: usize,
    pub cache_bytes: u64,
    pub seconds: f64,
    pub rss_start_bytes: u64,
    pub rss_peak_bytes: u64,
    pub rss_end_bytes: u64,
}

/// The page cache the measured service runs with (the default of `--cache-size`).
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Writes `count` chatbots through a fresh service's REST face with 64 clients, sampling its resident
/// memory every 200 ms.
pub async fn measure_writes(count: usize) -> anyhow::Result<WrittenFootprint> {
    let dir = tempfile::tempdir()?;
    let mut command =
        chatbotd_command(&["--data-dir".as_ref(), dir.path().as_os_str(), "--cache-size".as_ref(), "128MiB".as_ref()]);
    let mut child =
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).kill_on_drop(true).spawn()?;
    let pid = child.id().unwrap_or_default();
    let rest = chatbotd_tests::announced(&mut child, &["REST"], Duration::from_secs(60)).await?.addr("REST");
    let rss_start_bytes = rss(pid)?;
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_start_bytes));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(now) = rss(pid) {
                    peak.fetch_max(now, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let template = std::sync::Arc::new(crate::drive::create_template(false));
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..64)
        .map(|_| {
            let (template, next) = (template.clone(), next.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return anyhow::Ok(());
                    }
                    let body = template.replace("__SLUG__", &format!("written-{i}"));
                    let response = http
                        .post(format!("http://{rest}/api/external/chatbots"))
                        .header("x-api-key", KEY)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(response.status().as_u16() == 201, "a create failed: {}", response.status());
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let rss_end_bytes = rss(pid)?;
    child.kill().await?;
    let rss_peak_bytes = peak.load(Ordering::Relaxed).max(rss_end_bytes);
    eprintln!("# {count} written through REST in {seconds:.0} s: RSS peak {} MB", rss_peak_bytes / 1_000_000);
    Ok(WrittenFootprint {
        chatbots: count,
        cache_bytes: CACHE_BYTES,
        seconds,
        rss_start_bytes,
        rss_peak_bytes,
        rss_end_bytes,
    })
}

/// Creates chatbots `from..to` with 64 threads; returns a sample of ids to read back.
fn populate(dir: &Path, from: usize, to: usize) -> anyhow::Result<Vec<String>> {
    let registry = Registry::open(dir, Rules::default())?;
    let org = registry.add_api_key("default", &ApiKey::from_secret(KEY))?;
    let next = AtomicUsize::new(from);
    let sample = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        break;
                    }
                    let created = registry.create(org, example_draft(format!("footprint-{i}"))).expect("created");
                    if i.is_multiple_of(1000) {
                        sample.lock().expect("unpoisoned").push(created.id.to_string());
                    }
                }
            });
        }
    });
    Ok(sample.into_inner().expect("unpoisoned"))
}

/// Bytes the files under `dir` occupy on disk (allocated blocks).
fn disk_usage(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        } else {
            total += metadata.blocks() * 512;
        }
    }
    Ok(total)
}

/// Resident set size of a process.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(kb * 1024)
}

/// What history costs on disk: `chatbots` chatbots stored, then each changed `updates` times.
#[derive(Debug, Serialize)]
pub struct HistoryFootprint {
    pub chatbots: usize,
    pub updates_per_chatbot: usize,
    pub disk_before_bytes: u64,
    pub disk_after_bytes: u64,
    pub bytes_per_revision: f64,
}

/// Creates `chatbots` chatbots through the core (sled), then changes each `updates` times (a new
/// description each time: every change a revision), and measures the disk before and after.
pub fn measure_history(chatbots: usize, updates: usize) -> anyhow::Result<HistoryFootprint> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path(), Rules::default())?;
    let org = registry.add_api_key("default", &ApiKey::from_secret(KEY))?;
    let ids: Vec<_> = (0..chatbots)
        .map(|i| registry.create(org, example_draft(format!("history-{i}"))).map(|c| c.id))
        .collect::<Result<_, _>>()?;
    drop(registry);
    let disk_before_bytes = disk_usage(dir.path())?;
    let registry = Registry::open(dir.path(), Rules::default())?;
    let mask = chatbot_core::FieldMask::parse(["description"])?;
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chatbots * updates {
                        break;
                    }
                    let draft = chatbot_core::ChatbotDraft {
                        description: Some(format!("a changed description, number {i}")),
                        ..Default::default()
                    };
                    registry.update(org, ids[i % chatbots], draft, mask, None).expect("updated");
                }
            });
        }
    });
    drop(registry);
    let disk_after_bytes = disk_usage(dir.path())?;
    let revisions = (chatbots * updates) as f64;
    let bytes_per_revision = disk_after_bytes.saturating_sub(disk_before_bytes) as f64 / revisions;
    eprintln!("# history: {chatbots} chatbots x {updates} updates: {bytes_per_revision:.0} B a revision on disk");
    Ok(HistoryFootprint {
        chatbots,
        updates_per_chatbot: updates,
        disk_before_bytes,
        disk_after_bytes,
        bytes_per_revision,
    })
}
