//! The peer: PostgreSQL from Debian's packages (`apt-get install postgresql`), in a throwaway cluster
//! on a loopback port, inserting the same record as JSONB with a unique slug index, driven by pgbench.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::drive::Measured;

/// A running throwaway cluster; stopped when dropped.
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server tools as this user (PostgreSQL refuses to run as root).
    user: Option<String>,
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and `pgbench`.
fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| ["initdb", "pg_ctl", "postgres", "pgbench", "psql"].iter().all(|tool| bin.join(tool).exists()))
        .collect();
    candidates.sort();
    candidates.pop()
}

impl Cluster {
    /// Creates and starts a cluster, or says plainly why it cannot.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin().ok_or(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin with initdb, pg_ctl, postgres, pgbench, psql); \
             install it with `apt-get install postgresql`",
        )?;
        let root = nix_is_root();
        let user = root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new().prefix("chatbotd-pg").tempdir().map_err(|e| e.to_string())?;
        if root {
            run(Command::new("chown").args(["-R", "postgres"]).arg(dir.path()))?;
        }
        let port = free_port()?;
        let cluster = Cluster { bin, dir, port, user };
        let data = cluster.data();
        cluster.tool("initdb", &["-D", &data, "-U", "bench", "-A", "trust", "--no-sync", "-E", "UTF8"])?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on \
             -c max_connections=200 -c shared_buffers=256MB",
            cluster.dir.path().display()
        );
        let log = format!("{}/server.log", cluster.dir.path().display());
        cluster.tool("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "start"])?;
        cluster.psql(
            "CREATE TABLE chatbots (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), organization_id uuid NOT NULL, \
             slug text NOT NULL UNIQUE, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
             updated_at timestamptz NOT NULL DEFAULT now()); \
             CREATE INDEX chatbots_by_org ON chatbots (organization_id, created_at DESC, id); \
             CREATE SEQUENCE slugs;",
        )?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn tool(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(tool).args(args).current_dir(self.dir.path()))
    }

    fn psql(&self, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        self.tool(
            "psql",
            &["-h", "127.0.0.1", "-p", &port, "-U", "bench", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
        )
    }

    /// `clients` pgbench clients inserting the example record for `duration`.
    pub fn pgbench(&self, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
        let body: serde_json::Value = serde_json::from_str(include_str!("example.json"))?;
        // The record travels as a bound parameter (-M prepared), as a driver would send it.
        let script = "INSERT INTO chatbots (organization_id, slug, body) VALUES \
             ('123042b2-86e2-4184-a86e-95423d728815', 'pg-' || nextval('slugs'), :body::jsonb);\n";
        let body = format!("body={body}");
        let run_dir = self.dir.path().join(format!("run-{clients}"));
        std::fs::create_dir_all(&run_dir)?;
        if self.user.is_some() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&run_dir)).map_err(anyhow::Error::msg)?;
        }
        std::fs::write(run_dir.join("insert.sql"), script)?;
        let seconds = duration.as_secs().max(1).to_string();
        let (port, clients_arg, threads) = (self.port.to_string(), clients.to_string(), clients.min(2).to_string());
        let prefix = run_dir.join("log");
        let script_path = run_dir.join("insert.sql");
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "bench",
            "-n",
            "-M",
            "prepared",
            "-D",
            &body,
            "-c",
            &clients_arg,
            "-j",
            &threads,
            "-T",
            &seconds,
            "-f",
            &script_path.display().to_string(),
            "-l",
            "--log-prefix",
            &prefix.display().to_string(),
            "postgres",
        ];
        let output = run(self.command("pgbench").args(args).current_dir(&run_dir)).map_err(anyhow::Error::msg)?;
        let failed = output
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|n| n.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let mut measured = Measured { ops: 0, errors: failed, elapsed: duration, latency: Histogram::new(3)? };
        for entry in std::fs::read_dir(&run_dir)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log")) {
                read_log(&path, &mut measured)?;
            }
        }
        Ok(measured)
    }
}

/// pgbench's per-transaction log: `client transaction latency_us script epoch_s epoch_us`.
fn read_log(path: &Path, measured: &mut Measured) -> anyhow::Result<()> {
    for line in std::fs::read_to_string(path)?.lines() {
        if let Some(latency) = line.split_whitespace().nth(2).and_then(|l| l.parse::<u64>().ok()) {
            let _ = measured.latency.record(latency.max(1));
            measured.ops += 1;
        }
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.tool("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn nix_is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}
