//! The `chatbot.admin.v1.AdminService` handlers: organisations, API keys, exports and the rotation of
//! sealed secrets, for operators
//! holding the admin token.

use std::sync::Arc;

use chatbot_core::fair_use::AdminDoor;
use chatbot_core::secrets::Secrets;
use chatbot_core::{Admission, ApiKeyInfo, Error, KeyHash, KeyId, Transfer};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::admin_pb::admin_service_server::AdminService;
use crate::admin_pb::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreateOrganisationRequest, ExportChunk, ExportRequest,
    ListApiKeysRequest, ListApiKeysResponse, Organisation, RevokeApiKeyRequest, RotateSecretsProgress,
    RotateSecretsRequest,
};
use crate::convert::timestamp;
use crate::status::{admin_refused, to_status};

/// The metadata entry that carries the admin token.
pub const ADMIN_TOKEN_METADATA: &str = "x-admin-token";

/// The admin service over what it needs of the core (keys, exports); it refuses every call unless built
/// with a token, and then every call without that token.
#[derive(Clone)]
pub struct AdminApi {
    admission: Arc<Admission>,
    transfer: Arc<Transfer>,
    secrets: Arc<Secrets>,
    /// The SHA-256 of the token: compared digest to digest, so the comparison says nothing of the token.
    token: Option<KeyHash>,
    /// Shuts out the client addresses that guess.
    door: Arc<AdminDoor>,
}

/// The shortest admin token accepted at start-up: 32 characters (128 bits as hex), far beyond guessing
/// at the few guesses a second the door lets through.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl AdminApi {
    /// The admin service over `registry`'s keys, exports and secrets, open to callers presenting
    /// `token` (to none without one).
    pub fn new(registry: &chatbot_core::Registry, token: Option<&str>) -> Self {
        let token = token.filter(|t| !t.is_empty()).map(KeyHash::of);
        AdminApi {
            admission: Arc::clone(registry.admission()),
            transfer: Arc::clone(registry.transfer()),
            secrets: Arc::clone(registry.secrets()),
            token,
            door: Arc::new(AdminDoor::new()),
        }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = self.token else {
            return Err(admin_refused(
                tonic::Code::PermissionDenied,
                "the admin service is off: start chatbotd with CHATBOTD_ADMIN_TOKEN",
            ));
        };
        let client = request.remote_addr().map(|addr| addr.ip());
        if let Some(Err(exhausted)) = client.map(|client| self.door.open_to(client)) {
            return Err(to_status(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after }));
        }
        let given = request.metadata().get(ADMIN_TOKEN_METADATA).and_then(|v| v.to_str().ok()).map(KeyHash::of);
        if given == Some(expected) {
            Ok(())
        } else {
            if let Some(client) = client {
                self.door.wrong_token(client);
            }
            Err(admin_refused(tonic::Code::Unauthenticated, "a valid x-admin-token is required"))
        }
    }
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").field("enabled", &self.token.is_some()).finish_non_exhaustive()
    }
}

/// The message for a key's record.
fn api_key(key: &ApiKeyInfo, organisation: String) -> ApiKey {
    ApiKey {
        id: key.id.to_string(),
        organisation_id: key.organisation_id.to_string(),
        organisation,
        prefix: key.prefix.clone(),
        create_time: Some(timestamp(key.created_at)),
        last_use_time: key.last_used_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_organisation(
        &self,
        request: Request<CreateOrganisationRequest>,
    ) -> Result<Response<Organisation>, Status> {
        self.check(&request)?;
        let name = request.into_inner().name;
        let id = self.admission.create_organisation(&name).await.map_err(to_status)?;
        Ok(Response::new(Organisation { id: id.to_string(), name }))
    }

    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        self.check(&request)?;
        let organisation = request.into_inner().organisation;
        let (info, key) = self.admission.issue_api_key(&organisation).await.map_err(to_status)?;
        Ok(Response::new(CreateApiKeyResponse {
            key: Some(api_key(&info, organisation)),
            secret: key.expose().to_owned(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        self.check(&request)?;
        let organisation = request.into_inner().organisation;
        let filter = (!organisation.is_empty()).then_some(organisation.as_str());
        let keys = self.admission.list_api_keys(filter).await.map_err(to_status)?;
        Ok(Response::new(ListApiKeysResponse { keys: keys.into_iter().map(|(key, org)| api_key(&key, org)).collect() }))
    }

    async fn revoke_api_key(&self, request: Request<RevokeApiKeyRequest>) -> Result<Response<()>, Status> {
        self.check(&request)?;
        let id: KeyId = request.into_inner().id.parse().map_err(|_| to_status(Error::NotFound))?;
        self.admission.revoke_api_key(id).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    type ExportStream = ReceiverStream<Result<ExportChunk, Status>>;

    async fn export(&self, request: Request<ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        self.check(&request)?;
        let decrypt = request.get_ref().decrypt;
        let (chunks, stream) = tokio::sync::mpsc::channel(4);
        let transfer = Arc::clone(&self.transfer);
        tokio::spawn(async move {
            let failed = |err: Error| Err(to_status(err));
            let mut snapshot = match transfer.snapshot().await {
                Ok(snapshot) => snapshot,
                Err(err) => return drop(chunks.send(failed(err)).await),
            };
            let line = |record: chatbot_core::Record| match decrypt {
                true => transfer.decrypted(record)?.to_line(),
                false => record.to_line(),
            };
            loop {
                let lines = match snapshot.next_batch().await {
                    Ok(Some(batch)) => batch.into_iter().map(line).collect::<Result<Vec<_>, _>>(),
                    Ok(None) => return,
                    Err(err) => return drop(chunks.send(failed(err)).await),
                };
                let lines = match lines {
                    Ok(lines) => lines,
                    Err(err) => return drop(chunks.send(failed(err)).await),
                };
                for chunk in in_chunks(lines) {
                    // A reader that went away ends the export (and its snapshot).
                    if chunks.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    type RotateSecretsStream = ReceiverStream<Result<RotateSecretsProgress, Status>>;

    async fn rotate_secrets(
        &self,
        request: Request<RotateSecretsRequest>,
    ) -> Result<Response<Self::RotateSecretsStream>, Status> {
        self.check(&request)?;
        let batch = match request.get_ref().batch_size {
            0 => chatbot_core::secrets::DEFAULT_ROTATION_BATCH,
            n => usize::try_from(n).unwrap_or(usize::MAX).min(10_000),
        };
        let (progress, stream) = tokio::sync::mpsc::channel(4);
        let secrets = Arc::clone(&self.secrets);
        // The rotation goes on in its own task: a caller that goes away stops hearing of it (it is safe
        // to run again). Progress that finds the channel full is skipped; the last message never is.
        tokio::spawn(async move {
            let message = |p: &chatbot_core::secrets::Rotation| RotateSecretsProgress {
                contents: p.contents as u64,
                resealed: p.resealed as u64,
                ..Default::default()
            };
            let rotated = secrets.rotate(batch, |p| drop(progress.try_send(Ok(message(p))))).await;
            let last = rotated.map(|(rotation, census)| RotateSecretsProgress {
                done: true,
                current: census.current as u64,
                older: census.older as u64,
                unknown_key: census.unknown_key as u64,
                clear: census.clear as u64,
                ..message(&rotation)
            });
            let _ = progress.send(last.map_err(to_status)).await;
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

/// Most bytes of lines per chunk of an export (a chunk holds at least one line, and a line at most
/// one avatar image in base64, well under what gRPC clients accept by default).
const CHUNK_BYTES: usize = 1024 * 1024;

/// `lines` as chunks of about [`CHUNK_BYTES`] each.
fn in_chunks(lines: Vec<String>) -> Vec<ExportChunk> {
    let mut chunks = vec![ExportChunk::default()];
    let mut size = 0;
    for line in lines {
        if size + line.len() > CHUNK_BYTES && size > 0 {
            chunks.push(ExportChunk::default());
            size = 0;
        }
        size += line.len();
        chunks.last_mut().expect("at least one chunk").lines.push(line);
    }
    chunks
}
