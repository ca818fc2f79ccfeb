//! The chatbotd benchmark: our service beside what the hardware and libraries allow at best, and
//! beside PostgreSQL, all measured in one run on one machine.
//!
//! ```sh
//! cargo bench -p chatbotd-tests --bench load                 # full: 10 s a row, footprint at 100k and 1M
//! cargo bench -p chatbotd-tests --bench load -- --quick      # a few seconds a row, footprint at 10k
//! ```
//! Options after `--`: `--quick`, `--seconds S`, `--clients 1,16,64`, `--footprint 100000,1000000`
//! (`--footprint none` skips it), `--json PATH` (default `target/bench/load.json`), `--only NAMES` (only
//! the rows whose name contains one of the `|`-separated NAMES, e.g. `core create` under a profiler; a
//! name after `=` matches only itself: `=REST create|watchers`).
//!
//! Rows:
//! - ours: `chatbotd serve` as a real process over a temp dir, driven over loopback: REST create (the
//!   contract's example with a unique slug), REST get, REST list (a page of 20), gRPC create, gRPC get;
//!   REST create with the example plus an `openai_api_key` (sealed before it is stored); REST create
//!   and get over TLS (a fresh server with a certificate made by rcgen, clients on rustls);
//!   REST create again on a fresh server while 100 change streams of another organisation wait, and
//!   while 100 of the organisation written to read every create; plus `core
//!   create`, the core library called directly (rules + store, no network).
//! - ceilings: a bare hyper server answering every POST with a canned 201 of the same size (HTTP), a
//!   tonic server's near-empty unary method `grpc.health.v1.Health/Check` (gRPC).
//! - peers: raw sled inserts of the same record, each followed by sled's own flush; PostgreSQL (Debian's
//!   packages) in a throwaway cluster, `fsync=on`, `synchronous_commit=on`, inserting the same record as
//!   JSONB with a unique slug index, driven by pgbench.
//! - ours on PostgreSQL: `chatbotd serve --database-url` over a fresh database of that same cluster,
//!   REST create and get, with one replica and with two (clients spread over both).

mod drive;
mod footprint;
mod postgres;
mod report;
mod servers;

use std::path::PathBuf;
use std::time::Duration;

use report::Row;

/// What to run.
struct Options {
    seconds: f64,
    clients: Vec<usize>,
    footprint: Vec<usize>,
    json: PathBuf,
    /// Only rows whose name contains one of these, or is one of those that start with `=` (for
    /// profiling one path, or comparing a few rows).
    only: Option<Vec<String>>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let quick = args.iter().any(|a| a == "--quick");
        let mut options = Options {
            seconds: if quick { 2.0 } else { 10.0 },
            clients: vec![1, 16, 64],
            footprint: if quick { vec![10_000] } else { vec![100_000, 1_000_000] },
            json: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/load.json"),
            only: None,
        };
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let list = |text: String| -> Vec<usize> { text.split(',').filter_map(|n| n.trim().parse().ok()).collect() };
        if let Some(seconds) = value("--seconds").and_then(|s| s.parse().ok()) {
            options.seconds = seconds;
        }
        if let Some(clients) = value("--clients") {
            options.clients = list(clients);
        }
        if let Some(sizes) = value("--footprint") {
            options.footprint = list(sizes);
        }
        options.only = value("--only").map(|names| names.split('|').map(str::to_owned).collect());
        if let Some(json) = value("--json") {
            options.json = PathBuf::from(json);
        }
        options
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, kind, ..] = args.as_slice()
        && flag == "--serve-ceiling"
    {
        return servers::serve_ceiling(kind);
    }
    let options = Options::parse(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(options))
}

/// Watchers open during the watched create rows.
const WATCHERS: usize = 100;
/// The rows of creates under watch: by watchers of the organisation written to, who read every
/// create, and by watchers of another one, who wait.
const WATCHED_CREATES: [(&str, servers::Whose); 2] = [
    ("REST create, 100 watchers of another organisation", servers::Whose::Another),
    ("REST create, 100 watchers reading every create", servers::Whose::Driven),
];

async fn run(options: Options) -> anyhow::Result<()> {
    let machine = report::Machine::describe();
    eprintln!("# {machine}; {} s a row, clients {:?}", options.seconds, options.clients);
    // Build the release binary now, so that no row (start-to-ready least of all) times the build.
    chatbotd_tests::chatbotd(chatbotd_tests::Profile::Release);
    let duration = Duration::from_secs_f64(options.seconds);
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    let wanted = |name: &str| {
        options.only.as_deref().is_none_or(|only| {
            only.iter().any(|part| match part.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(part.as_str()),
            })
        })
    };

    let ours_ops = [
        drive::Op::RestCreate,
        drive::Op::RestCreateWithSecret,
        drive::Op::RestCreateIdempotent,
        drive::Op::RestGet,
        drive::Op::RestList,
        drive::Op::RestUpdate,
        drive::Op::RestRevisions,
        drive::Op::PublicGet,
        drive::Op::GrpcCreate,
        drive::Op::GrpcGet,
    ];
    if ours_ops.iter().any(|op| wanted(op.label())) {
        let ours = servers::Chatbotd::sled().await?;
        let ids = ours.seed(1_000).await?;
        for &clients in &options.clients {
            for op in ours_ops.into_iter().filter(|op| wanted(op.label())) {
                rows.push(report::row(op.label(), "ours", clients, ours.drive(op, clients, duration, &ids).await?));
            }
        }
        if wanted(drive::Op::PublicGet.label()) {
            notes.push(format!("public cache hit rate (sled): {:.4}", ours.public_hit_rate().await?));
        }
    }
    // The same requests over TLS (a fresh server with a certificate made now): the cost of encryption.
    let over_tls = [("REST create over TLS", drive::Op::RestCreate), ("REST get over TLS", drive::Op::RestGet)];
    if over_tls.iter().any(|(name, _)| wanted(name)) {
        let ours = servers::Chatbotd::sled_over_tls().await?;
        let ids = ours.seed(1_000).await?;
        for &clients in &options.clients {
            for (name, op) in over_tls.into_iter().filter(|(name, _)| wanted(name)) {
                rows.push(report::row(name, "ours", clients, ours.drive(op, clients, duration, &ids).await?));
            }
        }
    }
    for (name, whose) in WATCHED_CREATES.into_iter().filter(|(name, _)| wanted(name)) {
        // The same create load while 100 services watch for changes: the cost of the change stream. The
        // 100 streams open at once, past the per-organisation opening rate (2 a second, burst 20) that
        // is there to slow a client reconnecting in a loop, so that limit is off for this server.
        let ours = servers::Chatbotd::sled_with(&["--max-watchers-per-org", "128", "--watch-rate-limit", "0"]).await?;
        let ids = ours.seed(1_000).await?;
        let _watchers = ours.watchers(WATCHERS, whose).await?;
        for &clients in &options.clients {
            let measured = ours.drive(drive::Op::RestCreate, clients, duration, &ids).await?;
            rows.push(report::row(name, "ours", clients, measured));
        }
    }
    if wanted("core create") {
        for &clients in &options.clients {
            rows.push(report::row("core create", "ours", clients, drive::core_create(clients, duration)?));
        }
    }

    let ceilings = [(drive::Op::HyperCanned, "hyper"), (drive::Op::TonicEmpty, "tonic")];
    for (op, kind) in ceilings.into_iter().filter(|(op, _)| wanted(op.label())) {
        let server = servers::Ceiling::start(kind).await?;
        for &clients in &options.clients {
            rows.push(report::row(op.label(), "ceiling", clients, server.drive(op, clients, duration).await?));
        }
    }
    if wanted("sled insert+flush") {
        for &clients in &options.clients {
            rows.push(report::row("sled insert+flush", "peer", clients, drive::sled_raw(clients, duration)?));
        }
    }

    let postgres_rows = [
        ("REST create on PostgreSQL", drive::Op::RestCreate, 1),
        ("REST get on PostgreSQL", drive::Op::RestGet, 1),
        ("gRPC create on PostgreSQL", drive::Op::GrpcCreate, 1),
        ("gRPC get on PostgreSQL", drive::Op::GrpcGet, 1),
        ("public get on PostgreSQL", drive::Op::PublicGet, 1),
        ("public get on PostgreSQL, 2 replicas", drive::Op::PublicGet, 2),
        ("REST update (PATCH with If-Match) on PostgreSQL", drive::Op::RestUpdate, 1),
        ("REST create on PostgreSQL, 2 replicas", drive::Op::RestCreate, 2),
        ("REST get on PostgreSQL, 2 replicas", drive::Op::RestGet, 2),
    ];
    let postgres_wanted = wanted("PostgreSQL insert")
        || wanted("PostgreSQL select by key")
        || postgres_rows.iter().any(|(name, ..)| wanted(name));
    match postgres_wanted.then(chatbotd_tests::postgres::Cluster::start) {
        None => {}
        Some(Err(why)) => eprintln!("# PostgreSQL rows skipped: {why}"),
        Some(Ok(cluster)) => {
            for replicas in [1, 2] {
                let chosen: Vec<_> =
                    postgres_rows.iter().filter(|(name, _, r)| *r == replicas && wanted(name)).collect();
                if chosen.is_empty() {
                    continue;
                }
                let url = cluster.create_database().map_err(anyhow::Error::msg)?;
                let ours = servers::Chatbotd::postgres(&url, replicas).await?;
                let ids = ours.seed(1_000).await?;
                for &clients in &options.clients {
                    for (name, op, _) in &chosen {
                        rows.push(report::row(name, "ours", clients, ours.drive(*op, clients, duration, &ids).await?));
                    }
                }
                if chosen.iter().any(|(_, op, _)| *op == drive::Op::PublicGet) {
                    let rate = ours.public_hit_rate().await?;
                    notes.push(format!("public cache hit rate (PostgreSQL, {replicas} replica(s), first): {rate:.4}"));
                }
            }
            if wanted("PostgreSQL insert") || wanted("PostgreSQL select by key") {
                let table = postgres::Table::create(&cluster).map_err(anyhow::Error::msg)?;
                for &clients in &options.clients {
                    if wanted("PostgreSQL insert") {
                        rows.push(report::row("PostgreSQL insert", "peer", clients, table.pgbench(clients, duration)?));
                    }
                    if wanted("PostgreSQL select by key") {
                        let measured = table.pgbench_select(clients, duration)?;
                        rows.push(report::row("PostgreSQL select by key", "peer", clients, measured));
                    }
                }
            }
        }
    }

    let footprint = footprint::measure(&options.footprint).await?;
    let written = match options.footprint.iter().max() {
        Some(&largest) => Some(footprint::measure_writes(largest).await?),
        None => None,
    };
    let history = match options.footprint.iter().max() {
        Some(&largest) => Some(footprint::measure_history(largest.min(10_000), 10)?),
        None => None,
    };
    let report = report::Report { machine, seconds: options.seconds, rows, footprint, written, history, notes };
    println!("{}", report.markdown());
    report.write_json(&options.json)?;
    eprintln!("# JSON written to {}", options.json.display());
    Ok(())
}
