//! Footprint: resident memory of the server, bytes on disk, and time from start to ready, with many
//! chatbots stored. The chatbots are created through the core library (the same rules and store as the
//! service, without the network, so that a million take minutes rather than an hour).

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

        let started = Instant::now();
        let mut command = chatbotd_command(&["--data-dir".as_ref(), dir.path().as_os_str()]);
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or_default();
        let announced = chatbotd_tests::announced(&mut child, &["REST"], Duration::from_secs(600)).await?;
        let rest = announced.addr("REST");
        let http = reqwest::Client::new();
        let healthz = format!("http://{rest}/healthz");
        while !http.get(&healthz).send().await.is_ok_and(|r| r.status().is_success()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let start_to_ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let rss_ready_bytes = rss(pid)?;
        for id in &sample {
            let response =
                http.get(format!("http://{rest}/api/external/chatbot/{id}")).header("x-api-key", KEY).send().await?;
            anyhow::ensure!(response.status().is_success(), "a stored chatbot could not be read");
        }
        let rss_after_reads_bytes = rss(pid)?;
        child.kill().await?;
        eprintln!("# footprint at {size}: {} MB on disk, ready in {start_to_ready_ms:.0} ms", disk_bytes / 1_000_000);
        results.push(Footprint {
            chatbots: size,
            disk_bytes,
            disk_bytes_per_chatbot: disk_bytes as f64 / size as f64,
            start_to_ready_ms,
            rss_ready_bytes,
            rss_after_reads_bytes,
            populate_per_second,
        });
    }
    Ok(results)
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
