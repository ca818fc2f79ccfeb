//! What the black-box suite (`api/`) and the benchmark (`benches/load/`) share: the `chatbotd` binary
//! they start, reading the lines in which a started process says where it listens, and throwaway
//! PostgreSQL clusters ([`postgres`]).

pub mod postgres;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// How the binary under test is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The dev profile, as `cargo test` builds it.
    Dev,
    /// The release profile, for the benchmark.
    Release,
}

/// The `chatbotd` binary of this workspace, built in `profile` on first use. The binary belongs to
/// another package (`rest-gateway`), so cargo sets no `CARGO_BIN_EXE_` for it here; asking cargo for it
/// also makes sure it is not stale. For the tests, cargo is asked exactly what the README's test command
/// asks (`cargo test --workspace`, without running anything), so that under that command it is a
/// no-op: a narrower build would resolve other features and rebuild the dependency tree.
/// `CHATBOTD_TEST_BINARY` names another binary to run instead (an older build, or one broken on purpose
/// to show that a test fails without what it guards).
pub fn chatbotd(profile: Profile) -> &'static Path {
    static GIVEN: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(given) = GIVEN.get_or_init(|| std::env::var_os(BINARY_VAR).map(PathBuf::from)) {
        return given;
    }
    static DEV: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = match profile {
        Profile::Dev => &DEV,
        Profile::Release => &RELEASE,
    };
    cell.get_or_init(|| build(profile).expect("the chatbotd binary builds"))
}

/// The variable that names a binary to test instead of this workspace's.
pub const BINARY_VAR: &str = "CHATBOTD_TEST_BINARY";

fn build(profile: Profile) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    match profile {
        Profile::Dev => command.args(["test", "--workspace", "--no-run"]),
        Profile::Release => command.args(["build", "--release", "-p", "rest-gateway", "--bin", "chatbotd"]),
    };
    command.args(["--quiet", "--message-format=json"]);
    let output = command.current_dir(env!("CARGO_MANIFEST_DIR")).output().context("cargo runs")?;
    anyhow::ensure!(output.status.success(), "cargo build failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)?
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        // The binary itself, not its unit-test harness (also called chatbotd).
        .filter(|message| message["target"]["name"] == "chatbotd" && message["profile"]["test"] == false)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo named no chatbotd executable")
}

/// What a started process printed before it was ready: where each face listens, and every other line.
#[derive(Debug, Default)]
pub struct Announced {
    /// `face` of each `<face> listening on <addr>` line.
    pub addrs: HashMap<String, SocketAddr>,
    /// The lines that were not announcements (e.g. a first start's API key).
    pub other_lines: Vec<String>,
}

impl Announced {
    /// Where `face` listens.
    pub fn addr(&self, face: &str) -> SocketAddr {
        self.addrs[face]
    }
}

/// Reads `child`'s stdout until each of `faces` has announced `<face> listening on <addr>`, within
/// `timeout`; then keeps draining stdout in the background so the child never blocks on a full pipe.
pub async fn announced(child: &mut Child, faces: &[&str], timeout: Duration) -> anyhow::Result<Announced> {
    let stdout = child.stdout.take().context("the child's stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut found = Announced::default();
    let reading = async {
        while faces.iter().any(|face| !found.addrs.contains_key(*face)) {
            let line = lines.next_line().await?.context("the process exited before announcing its ports")?;
            match line.split_once(" listening on ") {
                Some((face, addr)) if faces.contains(&face) => {
                    found.addrs.insert(face.to_owned(), addr.trim().parse()?);
                }
                _ => found.other_lines.push(line),
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, reading).await.context("the process did not announce its ports in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}
