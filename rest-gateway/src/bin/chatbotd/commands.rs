//! The operator's commands (`keys create|list|revoke`, `export`, `import`, `secrets rotate`), against a running service's
//! admin API (`--server`) or, without it, the store itself.

use std::io::{BufRead as _, Write};

use anyhow::Context as _;
use chatbot_core::secrets::Rotation;
use chatbot_core::{ApiKeyInfo, KeyId, Record, Registry, Timestamp};
use grpc_server::admin_pb::admin_service_client::AdminServiceClient;
use grpc_server::admin_pb::{self, CreateApiKeyRequest, ExportRequest, ListApiKeysRequest, RevokeApiKeyRequest};
use tonic::transport::Channel;

/// Where a command acts.
pub enum Target {
    /// The store itself (with sled, only while no server holds it).
    Store(Box<Registry>),
    /// A running service's admin API.
    Server(Remote),
}

/// A running service's admin API, with the token it asks for.
pub struct Remote {
    client: AdminServiceClient<Channel>,
    token: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl Remote {
    /// Connects to the admin API at `url` (the service's gRPC address, e.g. `http://127.0.0.1:50051`).
    pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let token =
            token.context("--server needs the service's admin token (--admin-token or CHATBOTD_ADMIN_TOKEN)")?;
        let channel =
            Channel::from_shared(url.to_owned())?.connect().await.with_context(|| format!("cannot reach {url}"))?;
        Ok(Remote {
            client: AdminServiceClient::new(channel),
            token: token.parse().context("the admin token is not ASCII")?,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(grpc_server::ADMIN_TOKEN_METADATA, self.token.clone());
        request
    }
}

/// One key as a listing shows it.
pub struct KeyLine {
    id: String,
    organisation: String,
    prefix: String,
    created: String,
    last_used: Option<String>,
}

impl KeyLine {
    fn of(key: &ApiKeyInfo, organisation: String) -> Self {
        KeyLine {
            id: key.id.to_string(),
            organisation,
            prefix: key.prefix.clone(),
            created: key.created_at.to_contract_string(),
            last_used: key.last_used_at.map(Timestamp::to_contract_string),
        }
    }

    fn of_message(key: admin_pb::ApiKey) -> Self {
        let at = |t: prost_types::Timestamp| {
            Timestamp::from_micros(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000).to_contract_string()
        };
        KeyLine {
            id: key.id,
            organisation: key.organisation,
            prefix: key.prefix,
            created: key.create_time.map(at).unwrap_or_default(),
            last_used: key.last_use_time.map(at),
        }
    }
}

impl std::fmt::Display for KeyLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last_used = self.last_used.as_deref().unwrap_or("never");
        write!(
            f,
            "{}  {}  {}...  created {}  last used {}",
            self.id, self.organisation, self.prefix, self.created, last_used
        )
    }
}

impl Target {
    /// Creates a key for organisation `org` (created if needed); prints its organisation and id, then the
    /// key itself as the last line.
    pub async fn create_key(&mut self, org: &str, out: &mut impl Write) -> anyhow::Result<()> {
        let (org_id, key_id, secret) = match self {
            Target::Store(registry) => {
                let (info, key) = registry.admission().issue_api_key(org).await?;
                (info.organisation_id.to_string(), info.id.to_string(), key.expose().to_owned())
            }
            Target::Server(remote) => {
                let request = remote.request(CreateApiKeyRequest { organisation: org.to_owned() });
                let created = remote.client.create_api_key(request).await?.into_inner();
                let key = created.key.context("the service sent no key record")?;
                (key.organisation_id, key.id, created.secret)
            }
        };
        writeln!(out, "organisation {org} ({org_id})")?;
        writeln!(out, "key id {key_id}")?;
        writeln!(out, "{secret}")?;
        Ok(())
    }

    /// Prints one line per key (of `org`, or of every organisation): never a secret.
    pub async fn list_keys(&mut self, org: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
        let lines: Vec<KeyLine> = match self {
            Target::Store(registry) => registry
                .admission()
                .list_api_keys(org)
                .await?
                .into_iter()
                .map(|(key, name)| KeyLine::of(&key, name))
                .collect(),
            Target::Server(remote) => {
                let request = remote.request(ListApiKeysRequest { organisation: org.unwrap_or_default().to_owned() });
                remote
                    .client
                    .list_api_keys(request)
                    .await?
                    .into_inner()
                    .keys
                    .into_iter()
                    .map(KeyLine::of_message)
                    .collect()
            }
        };
        for line in lines {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    /// Revokes the key `id`.
    pub async fn revoke_key(&mut self, id: &str, out: &mut impl Write) -> anyhow::Result<()> {
        match self {
            Target::Store(registry) => {
                let id: KeyId = id.parse().context("a key id is a lowercase UUID")?;
                registry.admission().revoke_api_key(id).await?;
            }
            Target::Server(remote) => {
                remote.client.revoke_api_key(remote.request(RevokeApiKeyRequest { id: id.to_owned() })).await?;
            }
        }
        writeln!(out, "revoked {id}")?;
        Ok(())
    }

    /// Writes everything, as it was at one moment, as JSON lines; stored secrets sealed unless
    /// `decrypt`.
    pub async fn export(&mut self, decrypt: bool, out: &mut impl Write) -> anyhow::Result<()> {
        match self {
            Target::Store(registry) => {
                let transfer = registry.transfer();
                let mut snapshot = transfer.snapshot().await?;
                while let Some(batch) = snapshot.next_batch().await? {
                    for record in batch {
                        let record = if decrypt { transfer.decrypted(record)? } else { record };
                        writeln!(out, "{}", record.to_line()?)?;
                    }
                }
            }
            Target::Server(remote) => {
                let mut chunks = remote.client.export(remote.request(ExportRequest { decrypt })).await?.into_inner();
                while let Some(chunk) = chunks.message().await? {
                    for line in chunk.lines {
                        writeln!(out, "{line}")?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

impl Target {
    /// Reseals every stored secret under the keyring's first key, `batch_size` chatbots at a time,
    /// with a progress line per batch on stderr and the census at the end.
    pub async fn rotate_secrets(&mut self, batch_size: usize) -> anyhow::Result<()> {
        let report = |contents: u64, resealed: u64| {
            eprintln!("looked at {contents} stored contents, resealed {resealed}");
        };
        let census = match self {
            Target::Store(registry) => {
                let progress = |p: &Rotation| report(p.contents as u64, p.resealed as u64);
                let (_, census) = registry.secrets().rotate(batch_size.max(1), progress).await?;
                [census.current, census.older, census.unknown_key, census.clear].map(|n| n as u64)
            }
            Target::Server(remote) => {
                let batch_size = u32::try_from(batch_size).unwrap_or(u32::MAX);
                let request = remote.request(admin_pb::RotateSecretsRequest { batch_size });
                let mut progress = remote.client.rotate_secrets(request).await?.into_inner();
                let mut last = admin_pb::RotateSecretsProgress::default();
                while let Some(step) = progress.message().await? {
                    report(step.contents, step.resealed);
                    last = step;
                }
                anyhow::ensure!(last.done, "the service ended the rotation before it was through; run it again");
                [last.current, last.older, last.unknown_key, last.clear]
            }
        };
        let [current, older, unknown_key, clear] = census;
        println!(
            "secrets under the first key: {current}; under older keys: {older}; under unknown keys: {unknown_key}; in clear: {clear}"
        );
        anyhow::ensure!(
            older + clear == 0,
            "{} values could not be resealed (written meanwhile?): run it again",
            older + clear
        );
        if unknown_key > 0 {
            eprintln!(
                "{unknown_key} values are sealed under keys this keyring does not hold: they cannot be opened until it does"
            );
        }
        Ok(())
    }
}

/// Reads JSON lines from stdin into `registry`; every bad line is reported with its number, and the
/// command fails if there was any.
pub async fn import(registry: &Registry, allow_non_empty: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        allow_non_empty || registry.transfer().is_empty().await?,
        "the target store already holds organisations; pass --allow-non-empty to import anyway"
    );
    let (mut imported, mut bad) = (0u64, 0u64);
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let outcome = match Record::from_line(&line) {
            Ok(record) => registry.transfer().import(record).await.map_err(|err| err.to_string()),
            Err(err) => Err(format!("not a record: {err}")),
        };
        match outcome {
            Ok(()) => imported += 1,
            Err(why) => {
                bad += 1;
                eprintln!("line {}: {why}", number + 1);
            }
        }
    }
    eprintln!("imported {imported} records, {bad} bad lines");
    anyhow::ensure!(bad == 0, "{bad} lines could not be imported");
    Ok(())
}
