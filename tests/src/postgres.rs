//! Throwaway PostgreSQL clusters from Debian's packages (`initdb` and `pg_ctl` under
//! `/usr/lib/postgresql/*/bin`), in a temp dir, on a free loopback port, with `fsync=on`. When run as
//! root the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
//!
//! Each cluster has a watchdog: a shell that waits on a pipe from this process and, when the pipe
//! closes (this process exits, however it exits), stops the server and removes its files. So a test
//! run never leaves a server behind, even for the cluster shared by all tests of a process.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable that makes a missing PostgreSQL a failure instead of a skip (`.ci/run` sets it).
pub const REQUIRE_VAR: &str = "CHATBOTD_TEST_REQUIRE_POSTGRES";

/// A running cluster; stopped and removed when dropped, or when this process exits.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server tools as this user.
    user: Option<String>,
    /// Closing it tells the watchdog to stop the server and remove its files.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    databases: AtomicUsize,
    /// Server options beyond the usual ones (`-c name=value ...`), kept for every start.
    extra: String,
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and the client tools, if PostgreSQL is installed.
pub fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| {
            ["initdb", "pg_ctl", "postgres", "psql", "pgbench", "pg_dump"].iter().all(|t| bin.join(t).exists())
        })
        .collect();
    candidates.sort();
    candidates.pop()
}

/// The cluster shared by the tests of this process, started on first use; `None` (with the reason)
/// when PostgreSQL is not installed.
pub fn shared() -> Result<&'static Cluster, String> {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    SHARED.get_or_init(Cluster::start).as_ref().map_err(Clone::clone)
}

impl Cluster {
    /// Creates and starts a cluster, or says plainly why it cannot.
    pub fn start() -> Result<Self, String> {
        Cluster::start_with("")
    }

    /// A cluster that takes TLS connections with the certificate `cert_pem` and its key `key_pem`
    /// (written into the cluster's directory, owned by its user, as PostgreSQL requires).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let staging = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
        let (cert, key) = (staging.join("server.crt"), staging.join("server.key"));
        std::fs::write(&cert, cert_pem).map_err(|e| e.to_string())?;
        std::fs::write(&key, key_pem).map_err(|e| e.to_string())?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        }
        if nix::unistd::Uid::effective().is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&staging))?;
        }
        Cluster::start_with(&format!("-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display()))
    }

    /// A cluster that is the primary of a synchronous streaming standby: every commit waits until a
    /// standby has it.
    pub fn start_primary() -> Result<Self, String> {
        Cluster::start_with("-c synchronous_standby_names='*' -c wal_keep_size=256MB")
    }

    /// A streaming standby of `primary`, copied with `pg_basebackup -R` and started: it replays the
    /// primary's changes and, being named by none but `*`, is its synchronous standby.
    pub fn start_standby_of(primary: &Cluster) -> Result<Self, String> {
        let root = nix::unistd::Uid::effective().is_root();
        let user = root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new().prefix("chatbotd-pg").tempdir().map_err(|e| e.to_string())?.keep();
        if root {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir))?;
        }
        let standby = Cluster {
            bin: primary.bin.clone(),
            dir,
            port: free_port()?,
            user,
            watchdog: Mutex::new(None),
            databases: AtomicUsize::new(0),
            extra: String::new(),
        };
        let (data, port) = (standby.data(), primary.port.to_string());
        let connection = format!("host=127.0.0.1 port={port} user=chatbotd application_name=standby");
        standby.tool("pg_basebackup", &["-d", &connection, "-D", &data, "-R", "-X", "stream", "--no-sync"])?;
        standby.watch()?;
        standby.start_server()?;
        Ok(standby)
    }

    /// Promotes a standby to primary (`pg_ctl promote`), waiting until it takes writes.
    pub fn promote(&self) -> Result<(), String> {
        self.tool("pg_ctl", &["-D", &self.data(), "-w", "promote"]).map(drop)
    }

    /// Kills the server's postmaster with SIGKILL, as a crash of its machine would.
    pub fn kill9(&self) -> Result<(), String> {
        let pid_file = std::fs::read_to_string(format!("{}/postmaster.pid", self.data())).map_err(|e| e.to_string())?;
        let pid: i32 = pid_file.lines().next().and_then(|line| line.trim().parse().ok()).ok_or("no postmaster pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| e.to_string())
    }

    fn start_with(extra: &str) -> Result<Self, String> {
        let bin = find_bin().ok_or(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin with initdb, pg_ctl, postgres, psql, pgbench, \
             pg_dump); install it with `apt-get install postgresql`",
        )?;
        let root = nix::unistd::Uid::effective().is_root();
        let user = root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new().prefix("chatbotd-pg").tempdir().map_err(|e| e.to_string())?.keep();
        if root {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir))?;
        }
        let port = free_port()?;
        let cluster = Cluster {
            bin,
            dir,
            port,
            user,
            watchdog: Mutex::new(None),
            databases: AtomicUsize::new(0),
            extra: extra.to_owned(),
        };
        let data = cluster.data();
        cluster.tool("initdb", &["-D", &data, "-U", "chatbotd", "-A", "trust", "--no-sync", "-E", "UTF8"])?;
        cluster.watch()?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server (again, after [`Cluster::stop_server`]).
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c max_connections=400 -c shared_buffers=256MB {}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let log = format!("{}/server.log", self.dir.display());
        self.tool("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]).map(drop)
    }

    /// Stops the server at once, as a crash or an outage would (`-m immediate`).
    pub fn stop_server(&self) -> Result<(), String> {
        self.tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]).map(drop)
    }

    /// A fresh, empty database, and its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("chatbotd_{}_{}", std::process::id(), self.databases.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// The URL of `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://chatbotd@127.0.0.1:{}/{database}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` in `database` with psql; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "chatbotd",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ];
        run(Command::new(self.bin.join("psql")).args(args))
    }

    /// Everything `database` holds, as SQL (`pg_dump`).
    pub fn dump(&self, database: &str) -> Result<String, String> {
        let port = self.port.to_string();
        run(Command::new(self.bin.join("pg_dump")).args(["-h", "127.0.0.1", "-p", &port, "-U", "chatbotd", database]))
    }

    /// A command for one of the server's tools, as the user the server runs as.
    pub fn command(&self, tool: &str) -> Command {
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

    /// A directory the server's user may write to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes `path` (a file or directory under [`Cluster::dir`]) belong to the server's user.
    pub fn give(&self, path: &Path) -> Result<(), String> {
        match &self.user {
            Some(user) => run(Command::new("chown").args(["-R", user]).arg(path)).map(drop),
            None => Ok(()),
        }
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    fn tool(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(tool).args(args).current_dir(&self.dir))
    }

    /// Starts the watchdog: once its stdin closes, it stops the server and removes the cluster's files.
    fn watch(&self) -> Result<(), String> {
        let as_user = self.user.as_ref().map_or_else(String::new, |user| format!("runuser -u {user} -- "));
        let script = format!(
            "read _; {as_user}{} -D {} -m immediate -w stop >/dev/null 2>&1; rm -rf {}",
            self.bin.join("pg_ctl").display(),
            self.data(),
            self.dir.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        *self.watchdog.lock().map_err(|e| e.to_string())? = Some((child, stdin));
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(mut watchdog) = self.watchdog.lock()
            && let Some((mut child, mut stdin)) = watchdog.take()
        {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
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
