//! The peer: PostgreSQL inserting the same record as JSONB with a unique slug index, driven by pgbench,
//! in a database of the benchmark's throwaway cluster (`chatbotd_tests::postgres`).

use std::path::Path;
use std::time::Duration;

use chatbotd_tests::postgres::Cluster;
use hdrhistogram::Histogram;

use crate::drive::Measured;

/// The peer's table, in a database of its own.
pub struct Table<'a> {
    cluster: &'a Cluster,
    database: String,
}

impl<'a> Table<'a> {
    /// A fresh database with the `chatbots` table pgbench inserts into.
    pub fn create(cluster: &'a Cluster) -> Result<Self, String> {
        let url = cluster.create_database()?;
        let database = url.rsplit('/').next().unwrap_or_default().to_owned();
        cluster.psql(
            &database,
            "CREATE TABLE chatbots (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), organization_id uuid NOT NULL, \
             slug text NOT NULL UNIQUE, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
             updated_at timestamptz NOT NULL DEFAULT now()); \
             CREATE INDEX chatbots_by_org ON chatbots (organization_id, created_at DESC, id); \
             CREATE SEQUENCE slugs;",
        )?;
        Ok(Table { cluster, database })
    }

    /// `clients` pgbench clients inserting the example record for `duration`.
    pub fn pgbench(&self, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
        // The record travels as a bound parameter (-M prepared), as a driver would send it.
        let script = "INSERT INTO chatbots (organization_id, slug, body) VALUES \
             ('123042b2-86e2-4184-a86e-95423d728815', 'pg-' || nextval('slugs'), :body::jsonb);\n";
        self.run("insert", script, clients, duration)
    }

    /// `clients` pgbench clients reading one of 1,000 stored example records by its unique key for
    /// `duration`: what a REST get on PostgreSQL costs the database at best.
    pub fn pgbench_select(&self, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
        let body: serde_json::Value = serde_json::from_str(include_str!("example.json"))?;
        let seed = format!(
            "INSERT INTO chatbots (organization_id, slug, body) SELECT '123042b2-86e2-4184-a86e-95423d728815', \
             'sel-' || n, $json${body}$json$::jsonb FROM generate_series(1, 1000) AS n ON CONFLICT (slug) DO NOTHING"
        );
        self.cluster.psql(&self.database, &seed).map_err(anyhow::Error::msg)?;
        let script = "\\set n random(1, 1000)\nSELECT id, body, created_at, updated_at FROM chatbots WHERE slug = 'sel-' || :n;\n";
        self.run("select", script, clients, duration)
    }

    /// Runs `script` (named `name`) with `clients` pgbench clients for `duration`.
    fn run(&self, name: &str, script: &str, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
        let body: serde_json::Value = serde_json::from_str(include_str!("example.json"))?;
        let body = format!("body={body}");
        let run_dir = self.cluster.dir().join(format!("pgbench-{name}-{clients}"));
        std::fs::create_dir_all(&run_dir)?;
        std::fs::write(run_dir.join(format!("{name}.sql")), script)?;
        self.cluster.give(&run_dir).map_err(anyhow::Error::msg)?;
        let seconds = duration.as_secs().max(1).to_string();
        let (port, clients_arg, threads) =
            (self.cluster.port().to_string(), clients.to_string(), clients.min(2).to_string());
        let prefix = run_dir.join("log").display().to_string();
        let script_path = run_dir.join(format!("{name}.sql")).display().to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "chatbotd",
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
            &script_path,
            "-l",
            "--log-prefix",
            &prefix,
            &self.database,
        ];
        let output = self.cluster.command("pgbench").args(args).current_dir(&run_dir).output()?;
        anyhow::ensure!(output.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&output.stderr));
        let failed = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: ").map(str::to_owned))
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
