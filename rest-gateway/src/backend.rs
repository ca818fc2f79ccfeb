//! Where the gateway sends its calls: the gRPC service in the same process (the default: no network
//! hop, no encoding) or a remote grpc-server. Both are the same trait object.

use std::sync::Arc;

use grpc_server::pb::chatbot_service_client::ChatbotServiceClient;
use grpc_server::pb::chatbot_service_server::ChatbotService;
use grpc_server::pb::{
    Chatbot, CreateChatbotRequest, DeleteChatbotRequest, GetChatbotRequest, ListChatbotsRequest, ListChatbotsResponse,
    UpdateChatbotRequest,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The gRPC service the REST handlers call.
pub type Backend = Arc<dyn ChatbotService>;

/// The service in this process.
pub fn in_process(api: grpc_server::ChatbotApi) -> Backend {
    Arc::new(api)
}

/// A grpc-server elsewhere, reached at `endpoint` (e.g. `http://10.0.0.5:50051`). The connection is
/// made on first use and re-made after failures.
pub fn remote(endpoint: &str) -> Result<Backend, tonic::codegen::http::uri::InvalidUri> {
    let channel = Channel::from_shared(endpoint.to_owned())?.connect_lazy();
    Ok(Arc::new(Remote(ChatbotServiceClient::new(channel))))
}

/// Forwards each call, metadata included, to a remote service.
struct Remote(ChatbotServiceClient<Channel>);

#[tonic::async_trait]
impl ChatbotService for Remote {
    async fn create_chatbot(&self, request: Request<CreateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        self.0.clone().create_chatbot(request).await
    }

    async fn get_chatbot(&self, request: Request<GetChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        self.0.clone().get_chatbot(request).await
    }

    async fn list_chatbots(
        &self,
        request: Request<ListChatbotsRequest>,
    ) -> Result<Response<ListChatbotsResponse>, Status> {
        self.0.clone().list_chatbots(request).await
    }

    async fn update_chatbot(&self, request: Request<UpdateChatbotRequest>) -> Result<Response<Chatbot>, Status> {
        self.0.clone().update_chatbot(request).await
    }

    async fn delete_chatbot(&self, request: Request<DeleteChatbotRequest>) -> Result<Response<()>, Status> {
        self.0.clone().delete_chatbot(request).await
    }
}
