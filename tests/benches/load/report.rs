//! The results: a markdown table with ratios beside each figure, and the same as JSON.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::drive::Measured;
use crate::footprint::{Footprint, HistoryFootprint, WrittenFootprint};

/// One measured row.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    /// `ours`, `ceiling` or `peer`.
    pub kind: &'static str,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub fn row(name: &'static str, kind: &'static str, clients: usize, measured: Measured) -> Row {
    let ms = |q: f64| measured.latency.value_at_quantile(q) as f64 / 1000.0;
    let row = Row {
        name,
        kind,
        clients,
        ops: measured.ops,
        errors: measured.errors,
        per_second: measured.ops as f64 / measured.elapsed.as_secs_f64(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
    };
    eprintln!("# {name} x{clients}: {:.0}/s, p99 {:.2} ms, {} errors", row.per_second, row.p99_ms, row.errors);
    row
}

/// The machine the figures were measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: kb / 1024.0 / 1024.0,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cores ({}), {:.0} GiB", self.cores, self.cpu, self.memory_gib)
    }
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub seconds: f64,
    pub rows: Vec<Row>,
    pub footprint: Vec<Footprint>,
    pub written: Option<WrittenFootprint>,
    pub history: Option<HistoryFootprint>,
    /// Figures that belong to no row (the public cache's hit rates).
    pub notes: Vec<String>,
}

impl Report {
    fn find(&self, name: &str, clients: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name && r.clients == clients)
    }

    /// The ceiling a row of ours is compared with, and the peer for writes.
    fn references(name: &str) -> (Option<&'static str>, Option<&'static str>) {
        match name {
            n if n.starts_with("REST create") => (Some("HTTP ceiling"), Some("PostgreSQL insert")),
            "gRPC create" | "gRPC create on PostgreSQL" => (Some("gRPC ceiling"), Some("PostgreSQL insert")),
            "REST get on PostgreSQL" | "REST get on PostgreSQL, 2 replicas" => {
                (Some("HTTP ceiling"), Some("PostgreSQL select by key"))
            }
            "gRPC get on PostgreSQL" => (Some("gRPC ceiling"), Some("PostgreSQL select by key")),
            "core create" => (None, Some("PostgreSQL insert")),
            n if n.starts_with("REST") || n.starts_with("public") => (Some("HTTP ceiling"), None),
            n if n.starts_with("gRPC") => (Some("gRPC ceiling"), None),
            _ => (None, None),
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Measured on {}, {} s per row, all in one run.\n\n\
             | operation | clients | req/s | p50 ms | p99 ms | p99.9 ms | errors | / ceiling | / sled insert+flush | / PostgreSQL peer |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.machine, self.seconds
        );
        let ratio = |row: &Row, other: Option<&str>| -> String {
            other
                .and_then(|name| self.find(name, row.clients))
                .filter(|o| o.per_second > 0.0)
                .map_or_else(String::new, |o| format!("{:.2}", row.per_second / o.per_second))
        };
        for row in &self.rows {
            let (ceiling, peer) = if row.kind == "ours" { Self::references(row.name) } else { (None, None) };
            let storage = (row.kind == "ours" && row.name.contains("create") && !row.name.contains("PostgreSQL"))
                .then_some("sled insert+flush");
            out += &format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |\n",
                row.name,
                row.clients,
                row.per_second,
                row.p50_ms,
                row.p99_ms,
                row.p999_ms,
                row.errors,
                ratio(row, ceiling),
                ratio(row, storage),
                ratio(row, peer),
            );
        }
        for note in &self.notes {
            out += &format!("\n{note}\n");
        }
        if !self.footprint.is_empty() {
            out += "\n| chatbots stored | on disk | per chatbot | first start to ready | RSS at ready | RSS after reads | clean restart to ready | RSS at ready |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n";
            for f in &self.footprint {
                out += &format!(
                    "| {} | {:.1} MB | {:.0} B | {:.0} ms | {:.1} MB | {:.1} MB | {:.0} ms | {:.1} MB |\n",
                    f.chatbots,
                    f.disk_bytes as f64 / 1e6,
                    f.disk_bytes_per_chatbot,
                    f.start_to_ready_ms,
                    f.rss_ready_bytes as f64 / 1e6,
                    f.rss_after_reads_bytes as f64 / 1e6,
                    f.restart_to_ready_ms,
                    f.rss_restart_ready_bytes as f64 / 1e6,
                );
            }
        }
        if let Some(h) = &self.history {
            out += &format!(
                "\n| history: chatbots | changes each | on disk before | after | per revision |\n|---:|---:|---:|---:|---:|\n\
                 | {} | {} | {:.1} MB | {:.1} MB | {:.0} B |\n",
                h.chatbots,
                h.updates_per_chatbot,
                h.disk_before_bytes as f64 / 1e6,
                h.disk_after_bytes as f64 / 1e6,
                h.bytes_per_revision,
            );
        }
        if let Some(w) = &self.written {
            out += &format!(
                "\n| written through REST | in | page cache | RSS before | RSS peak | RSS after |\n|---:|---:|---:|---:|---:|---:|\n\
                 | {} | {:.0} s | {:.0} MB | {:.1} MB | {:.1} MB | {:.1} MB |\n",
                w.chatbots,
                w.seconds,
                w.cache_bytes as f64 / 1e6,
                w.rss_start_bytes as f64 / 1e6,
                w.rss_peak_bytes as f64 / 1e6,
                w.rss_end_bytes as f64 / 1e6,
            );
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}
