//! The `chatbot.v1.ChatbotService` handlers: authenticate, convert, call the core, convert back.

use std::sync::Arc;

use chatbot_core::{ChatbotId, Error, FieldMask, ListQuery, OrgId, PageCursor, Registry, Rejection, Violation};
use tonic::{Request, Response, Status};

use crate::pb::chatbot_service_server::ChatbotService;
use crate::pb::{
    Chatbot, CreateChatbotRequest, DeleteChatbotRequest, GetChatbotRequest, ListChatbotsRequest, ListChatbotsResponse,
    UpdateChatbotRequest,
};
use crate::{convert, status::to_status};

/// The metadata entry (and HTTP header) that carries the caller's API key.
pub const API_KEY_METADATA: &str = "x-api-key";

/// The gRPC service over a shared [`Registry`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct ChatbotApi {
    registry: Arc<Registry>,
}

impl ChatbotApi {
    /// A service answering from `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        ChatbotApi { registry }
    }

    /// The organisation of the request's API key.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<OrgId, Status> {
        let key = request.metadata().get(API_KEY_METADATA).and_then(|v| v.to_str().ok());
        let key = key.ok_or(Error::Unauthenticated).map_err(to_status)?;
        self.registry.authenticate(key).map_err(to_status)
    }
}

/// Awaits a write submitted to the registry. The store answers from its writer thread once the change
/// is on disk; no async worker or blocking thread waits for the disk meanwhile.
async fn durable<T: Send + 'static>(
    submit: impl FnOnce(Box<dyn FnOnce(chatbot_core::Result<T>) + Send>),
) -> Result<T, Status> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    submit(Box::new(move |result| {
        let _ = reply.send(result);
    }));
    let result = answer.await.unwrap_or_else(|_| Err(Error::Storage("the store could not complete the change".into())));
    result.map_err(to_status)
}

/// An id that is not a UUID names no chatbot: it is answered like an unknown one.
fn chatbot_id(id: &str) -> Result<ChatbotId, Status> {
    id.parse().map_err(|_| to_status(Error::NotFound))
}

/// An `etag` field: empty means "no precondition".
fn etag(tag: &str) -> Option<String> {
    (!tag.is_empty()).then(|| tag.to_owned())
}

fn invalid(field: &str, rejection: Rejection) -> Status {
    to_status(Error::invalid(rejection.at(field)))
}

#[tonic::async_trait]
impl ChatbotService for ChatbotApi {
    async fn create_chatbot(&self, request: Request<CreateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        let org = self.authenticate(&request)?;
        let request = request.into_inner();
        let draft = convert::draft(request.chatbot.unwrap_or_default());
        if request.validate_only {
            self.registry.validate(&draft).map_err(to_status)?;
            return Ok(Response::new(Chatbot::default()));
        }
        let created = durable(|done| self.registry.submit_create(org, draft, done)).await?;
        Ok(Response::new(convert::chatbot(&created)))
    }

    async fn get_chatbot(&self, request: Request<GetChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        let org = self.authenticate(&request)?;
        let id = chatbot_id(&request.get_ref().id)?;
        let chatbot = self.registry.get(org, id).map_err(to_status)?;
        Ok(Response::new(convert::chatbot(&chatbot)))
    }

    async fn list_chatbots(
        &self,
        request: Request<ListChatbotsRequest>,
    ) -> Result<Response<ListChatbotsResponse>, Status> {
        let org = self.authenticate(&request)?;
        let request = request.into_inner();
        let limit = match request.page_size {
            size if size < 0 => {
                let rejection = Rejection::new(chatbot_core::ViolationCode::InvalidFormat, "must not be negative");
                return Err(invalid("page_size", rejection));
            }
            0 => None,
            size => Some(size as usize),
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(PageCursor::parse(token).map_err(|r| invalid("page_token", r))?),
        };
        let query = ListQuery { limit, after, is_public: request.is_public, active: request.active };
        let page = self.registry.list(org, &query).map_err(to_status)?;
        Ok(Response::new(ListChatbotsResponse {
            chatbots: page.items.iter().map(convert::chatbot).collect(),
            next_page_token: page.next.map(|cursor| cursor.encode()).unwrap_or_default(),
        }))
    }

    async fn update_chatbot(&self, request: Request<UpdateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        let org = self.authenticate(&request)?;
        let request = request.into_inner();
        let chatbot = request.chatbot.unwrap_or_default();
        let id = chatbot_id(&chatbot.id)?;
        let expected = etag(&chatbot.etag);
        let draft = convert::draft(chatbot);
        let mask = match &request.update_mask {
            Some(mask) => FieldMask::parse(mask.paths.iter().map(String::as_str)).map_err(to_status)?,
            None => draft.given_fields(),
        };
        if mask.is_empty() {
            let violation =
                Violation::new("update_mask", chatbot_core::ViolationCode::Required, "names no field to change");
            return Err(to_status(Error::invalid(violation)));
        }
        if request.validate_only {
            self.registry.validate_update(org, id, &draft, mask).map_err(to_status)?;
            return Ok(Response::new(Chatbot::default()));
        }
        let updated =
            durable(|done| self.registry.submit_update(org, id, draft, mask, expected.as_deref(), done)).await?;
        Ok(Response::new(convert::chatbot(&updated)))
    }

    async fn delete_chatbot(&self, request: Request<DeleteChatbotRequest>) -> Result<Response<()>, Status> {
        let org = self.authenticate(&request)?;
        let id = chatbot_id(&request.get_ref().id)?;
        let expected = etag(&request.get_ref().etag);
        durable(|done| self.registry.submit_delete(org, id, expected.as_deref(), done)).await?;
        Ok(Response::new(()))
    }
}
