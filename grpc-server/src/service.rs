//! The `chatbot.v1.ChatbotService` handlers: authenticate, convert, call the registry, convert back.

use std::sync::Arc;
use std::time::Duration;

use chatbot_core::domain::limits::MAX_REQUEST_BYTES;
use chatbot_core::{
    AvatarImage, ChatbotId, Error, FieldMask, IdempotencyKey, ListQuery, OrgId, PageCursor, Principal, Provenance,
    Registry, Rejection, ResumeToken, RevisionRef, ViolationCode, Written, domain::Slug,
};
use futures_util::stream::{BoxStream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::pb::chatbot_service_server::ChatbotService;
use crate::pb::{
    Chatbot, ChatbotRevision, CreateChatbotRequest, DeleteChatbotRequest, DiffChatbotRevisionsRequest,
    DiffChatbotRevisionsResponse, GetChatbotRequest, GetChatbotRevisionRequest, ListChatbotRevisionsRequest,
    ListChatbotRevisionsResponse, ListChatbotsRequest, ListChatbotsResponse, PublishChatbotRevisionRequest,
    PurgeChatbotRequest, RollbackChatbotRequest, UndeleteChatbotRequest, UnpublishChatbotRequest,
    UpdateChatbotAvatarRequest, UpdateChatbotRequest, WatchChatbotsRequest, WatchChatbotsResponse,
};
use crate::status::{self, to_status};

/// The metadata entry (and HTTP header) that carries the caller's API key.
pub const API_KEY_METADATA: &str = "x-api-key";

/// The metadata entry a write's author may explain it in (kept with its revision).
pub const CHANGE_NOTE_METADATA: &str = "x-change-note";

/// The gRPC service over a shared [`Registry`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct ChatbotApi {
    registry: Arc<Registry>,
    /// How often an idle watch gets a heartbeat.
    heartbeat: Duration,
    /// Cancelled when the service drains: every watch ends.
    stopping: CancellationToken,
}

impl ChatbotApi {
    /// A service answering from `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        ChatbotApi { registry, heartbeat: chatbot_core::DEFAULT_HEARTBEAT, stopping: CancellationToken::new() }
    }

    /// This service, with watches that get a heartbeat every `heartbeat` when idle and end when
    /// `stopping` is cancelled.
    pub fn with_watching(self, heartbeat: Duration, stopping: CancellationToken) -> Self {
        ChatbotApi { heartbeat, stopping, ..self }
    }

    /// The organisation of the request's API key, within the key's rate limit (without a valid key,
    /// the client address's limit applies).
    async fn authenticate<T>(&self, request: &Request<T>) -> Result<OrgId, Status> {
        Ok(self.admit(request).await?.org)
    }

    /// Who the request is from (its key's organisation and id), within the key's rate limit.
    async fn admit<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let key = request.metadata().get(API_KEY_METADATA).and_then(|v| v.to_str().ok());
        let client = request.remote_addr().map(|addr| addr.ip());
        let principal = self.registry.admission().admit(key, client).await.0.map_err(to_status)?;
        tracing::Span::current().record("org", tracing::field::display(principal.org));
        Ok(principal)
    }

    /// The organisation of a write's API key, and who makes the write and why (its revision records
    /// it): the key's id, the call's `x-request-id`, and the `x-change-note` metadata entry.
    async fn author<T>(&self, request: &Request<T>) -> Result<(OrgId, Provenance), Status> {
        let principal = self.admit(request).await?;
        let metadata = request.metadata();
        let note = match metadata.get(CHANGE_NOTE_METADATA) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| Rejection::new(ViolationCode::InvalidFormat, "must be printable ASCII"))
                    .and_then(chatbot_core::history::parse_note)
                    .map_err(|rejection| invalid("x-change-note", rejection))?,
            ),
        };
        let request_id = metadata.get(crate::wire::REQUEST_ID_METADATA).and_then(|v| v.to_str().ok());
        Ok((principal.org, Provenance::api_key(principal.key, request_id, note)))
    }
}

/// Holds a message to the limit of every method but the avatar upload (the service's decoding limit is
/// the avatar's): RESOURCE_EXHAUSTED past it, as tonic answers past its own.
fn within_limit<T: prost::Message>(request: &Request<T>) -> Result<(), Status> {
    if request.get_ref().encoded_len() > MAX_REQUEST_BYTES {
        return Err(status::too_large(MAX_REQUEST_BYTES));
    }
    Ok(())
}

/// An id that is not a UUID names no chatbot: it is answered like an unknown one.
fn chatbot_id(id: &str) -> Result<ChatbotId, Status> {
    id.parse().map_err(|_| to_status(Error::NotFound))
}

/// A revision named by a request: its number or its `version_id`; anything else names none (404).
fn revision_id(revision: &str) -> Result<RevisionRef, Status> {
    RevisionRef::parse(revision).ok_or_else(|| to_status(Error::NotFound))
}

/// A `page_size` field: 0 means the largest page.
fn page_size(size: i32) -> Result<Option<usize>, Status> {
    match usize::try_from(size) {
        Err(_) => Err(invalid("page_size", Rejection::new(ViolationCode::InvalidFormat, "must not be negative"))),
        Ok(0) => Ok(None),
        Ok(size) => Ok(Some(size)),
    }
}

/// An `etag` field: empty means "no precondition".
fn etag(tag: &str) -> Option<&str> {
    (!tag.is_empty()).then_some(tag)
}

fn invalid(field: &str, rejection: Rejection) -> Status {
    to_status(Error::invalid(rejection.at(field)))
}

/// The metadata entry that marks an answer given again for a retried `request_id`.
pub const REPLAYED_METADATA: &str = "idempotent-replayed";

/// A `request_id` field (AIP-155): empty means none.
fn idempotency_key(request_id: &str) -> Result<Option<IdempotencyKey>, Status> {
    match request_id {
        "" => Ok(None),
        id => IdempotencyKey::parse(id).map(Some).map_err(|r| invalid("request_id", r)),
    }
}

/// The response for a write that may be a replay of an earlier one.
fn written<T, M>(written: Written<T>, message: impl FnOnce(T) -> M) -> Response<M> {
    let replayed = written.replayed;
    let mut response = Response::new(message(written.value));
    if replayed {
        response.metadata_mut().insert(REPLAYED_METADATA, tonic::metadata::MetadataValue::from_static("true"));
    }
    response
}

#[tonic::async_trait]
impl ChatbotService for ChatbotApi {
    type WatchChatbotsStream = BoxStream<'static, Result<WatchChatbotsResponse, Status>>;

    async fn watch_chatbots(
        &self,
        request: Request<WatchChatbotsRequest>,
    ) -> Result<Response<Self::WatchChatbotsStream>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let resume = match request.get_ref().resume_token.as_str() {
            "" => None,
            token => Some(ResumeToken::parse(token).map_err(|r| invalid("resume_token", r))?),
        };
        let watch = self.registry.watching().watch(org, resume).await.map_err(to_status)?;
        let changes = watch.map(|item| item.map(|event| convert::change(&event)).map_err(to_status));
        let mut every = tokio::time::interval(self.heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.reset();
        let heartbeats = tokio_stream::wrappers::IntervalStream::new(every).map(|_| Ok(convert::heartbeat()));
        // A heartbeat only when the stream has been idle for a whole interval would need a timer per
        // change; one every interval regardless is as good at keeping proxies from closing it.
        let stream = tokio_stream::StreamExt::merge(changes, heartbeats)
            .take_until(self.stopping.clone().cancelled_owned())
            .boxed();
        Ok(Response::new(stream))
    }

    async fn create_chatbot(&self, request: Request<CreateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let (draft, _) = convert::draft(request.chatbot.unwrap_or_default()).map_err(to_status)?;
        if request.validate_only {
            self.registry.validate(&draft).map_err(to_status)?;
            return Ok(Response::new(Chatbot::default()));
        }
        let key = idempotency_key(&request.request_id)?;
        let created = self.registry.create_with(org, draft, key, by).await.map_err(to_status)?;
        Ok(written(created, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn get_chatbot(&self, request: Request<GetChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let id = chatbot_id(&request.get_ref().id)?;
        let chatbot = self.registry.get(org, id).await.map_err(to_status)?;
        Ok(Response::new(convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn list_chatbots(
        &self,
        request: Request<ListChatbotsRequest>,
    ) -> Result<Response<ListChatbotsResponse>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(PageCursor::parse(token).map_err(|r| invalid("page_token", r))?),
        };
        let query = ListQuery {
            limit,
            after,
            is_public: request.is_public,
            active: request.active,
            show_deleted: request.show_deleted,
        };
        let page = self.registry.list(org, &query).await.map_err(to_status)?;
        let listed = |chatbot: &chatbot_core::Chatbot| {
            let mut message = convert::chatbot(chatbot, self.registry.public_url());
            if let Some(deletion) = page.deletion(chatbot.id) {
                message.delete_time = Some(convert::timestamp(deletion.delete_time));
                message.purge_time = Some(convert::timestamp(deletion.purge_time));
            }
            message
        };
        Ok(Response::new(ListChatbotsResponse {
            chatbots: page.items.iter().map(listed).collect(),
            next_page_token: page.next.map(|cursor| cursor.encode()).unwrap_or_default(),
        }))
    }

    async fn update_chatbot(&self, request: Request<UpdateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let mut chatbot = request.chatbot.unwrap_or_default();
        let id = chatbot_id(&chatbot.id)?;
        let expected = std::mem::take(&mut chatbot.etag);
        let (draft, given) = convert::draft(chatbot).map_err(to_status)?;
        let mask = match &request.update_mask {
            Some(mask) => FieldMask::parse(mask.paths.iter().map(String::as_str)).map_err(to_status)?,
            None => given,
        };
        if request.validate_only {
            self.registry.validate_update(org, id, &draft, mask).await.map_err(to_status)?;
            return Ok(Response::new(Chatbot::default()));
        }
        let key = idempotency_key(&request.request_id)?;
        let updated =
            self.registry.update_with(org, id, draft, mask, etag(&expected), key, by).await.map_err(to_status)?;
        Ok(written(updated, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn delete_chatbot(&self, request: Request<DeleteChatbotRequest>) -> Result<Response<()>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let id = chatbot_id(&request.id)?;
        let key = idempotency_key(&request.request_id)?;
        let deleted = self.registry.delete_with(org, id, etag(&request.etag), key, by).await.map_err(to_status)?;
        Ok(written(deleted, |()| ()))
    }

    async fn undelete_chatbot(&self, request: Request<UndeleteChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let id = chatbot_id(&request.id)?;
        let slug = match request.slug.as_str() {
            "" => None,
            slug => Some(Slug::parse(slug).map_err(|rejection| invalid("slug", rejection))?),
        };
        let key = idempotency_key(&request.request_id)?;
        let undeleted = self.registry.undelete_with(org, id, slug, key, by).await.map_err(to_status)?;
        Ok(written(undeleted, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn purge_chatbot(&self, request: Request<PurgeChatbotRequest>) -> Result<Response<()>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let id = chatbot_id(&request.get_ref().id)?;
        self.registry.purge(org, id).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn update_chatbot_avatar(
        &self,
        request: Request<UpdateChatbotAvatarRequest>,
    ) -> Result<Response<Chatbot>, Status> {
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let id = chatbot_id(&request.id)?;
        let key = idempotency_key(&request.request_id)?;
        let image = AvatarImage::parse(request.avatar).map_err(to_status)?;
        let updated =
            self.registry.update_avatar_with(org, id, image, etag(&request.etag), key, by).await.map_err(to_status)?;
        Ok(written(updated, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn list_chatbot_revisions(
        &self,
        request: Request<ListChatbotRevisionsRequest>,
    ) -> Result<Response<ListChatbotRevisionsResponse>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let request = request.into_inner();
        let id = chatbot_id(&request.id)?;
        let limit = page_size(request.page_size)?;
        let below = match request.page_token.as_str() {
            "" => None,
            token => match RevisionRef::parse(token) {
                Some(RevisionRef::Number(below)) => Some(below),
                _ => {
                    let message = "is not a page token this service gave";
                    return Err(invalid("page_token", Rejection::new(ViolationCode::InvalidFormat, message)));
                }
            },
        };
        let page = self.registry.revisions(org, id, limit, below).await.map_err(to_status)?;
        Ok(Response::new(ListChatbotRevisionsResponse {
            revisions: page.revisions.iter().map(convert::revision).collect(),
            next_page_token: page.next.map(|below| below.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_chatbot_revision(
        &self,
        request: Request<GetChatbotRevisionRequest>,
    ) -> Result<Response<ChatbotRevision>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let request = request.get_ref();
        let (id, which) = (chatbot_id(&request.id)?, revision_id(&request.revision_id)?);
        let snapshot = self.registry.revision(org, id, which).await.map_err(to_status)?;
        let mut revision = convert::revision(&snapshot.revision);
        revision.chatbot = Some(convert::chatbot(&snapshot.chatbot, self.registry.public_url()));
        Ok(Response::new(revision))
    }

    async fn diff_chatbot_revisions(
        &self,
        request: Request<DiffChatbotRevisionsRequest>,
    ) -> Result<Response<DiffChatbotRevisionsResponse>, Status> {
        within_limit(&request)?;
        let org = self.authenticate(&request).await?;
        let request = request.get_ref();
        let (id, to) = (chatbot_id(&request.id)?, revision_id(&request.revision_id)?);
        let from = match request.from_revision_id.as_str() {
            "" => None,
            from => Some(RevisionRef::parse(from).ok_or_else(|| {
                let message = "must be a revision number or a version_id";
                invalid("from_revision_id", Rejection::new(ViolationCode::InvalidFormat, message))
            })?),
        };
        let diff = self.registry.diff(org, id, to, from).await.map_err(to_status)?;
        let patch = serde_json::to_string(&diff.patch).map_err(|err| to_status(Error::storage(err)))?;
        Ok(Response::new(DiffChatbotRevisionsResponse {
            from: Some(convert::revision(&diff.from)),
            to: Some(convert::revision(&diff.to)),
            patch,
        }))
    }

    async fn publish_chatbot_revision(
        &self,
        request: Request<PublishChatbotRevisionRequest>,
    ) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let (id, which) = (chatbot_id(&request.id)?, revision_id(&request.revision_id)?);
        let key = idempotency_key(&request.request_id)?;
        let published =
            self.registry.publish_with(org, id, Some(which), etag(&request.etag), key, by).await.map_err(to_status)?;
        Ok(written(published, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn unpublish_chatbot(&self, request: Request<UnpublishChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let id = chatbot_id(&request.id)?;
        let key = idempotency_key(&request.request_id)?;
        let unpublished =
            self.registry.publish_with(org, id, None, etag(&request.etag), key, by).await.map_err(to_status)?;
        Ok(written(unpublished, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }

    async fn rollback_chatbot(&self, request: Request<RollbackChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        within_limit(&request)?;
        let (org, by) = self.author(&request).await?;
        let request = request.into_inner();
        let (id, which) = (chatbot_id(&request.id)?, revision_id(&request.revision_id)?);
        let key = idempotency_key(&request.request_id)?;
        let restored =
            self.registry.restore_with(org, id, which, etag(&request.etag), key, by).await.map_err(to_status)?;
        Ok(written(restored, |chatbot| convert::chatbot(&chatbot, self.registry.public_url())))
    }
}
