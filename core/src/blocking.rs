//! The registry for programs without an async runtime: the same operations, each blocking the calling
//! thread until it is done (a write, until it is durable).

use std::path::Path;

use futures_executor::block_on;

use crate::auth::ApiKey;
use crate::catalog::FieldMask;
use crate::chatbot::{Chatbot, ChatbotDraft};
use crate::domain::{ChatbotId, OrgId};
use crate::error::Result;
use crate::registry::{ListQuery, Page};
use crate::rules::Rules;

/// A [`crate::Registry`] whose methods block. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Registry(crate::Registry);

impl Registry {
    /// A registry over the embedded sled store in `dir`, created if needed.
    pub fn open(dir: impl AsRef<Path>, rules: Rules) -> Result<Self> {
        Ok(Registry(crate::Registry::open(dir, rules)?))
    }

    /// The async registry underneath, e.g. to hand to a face.
    pub fn into_async(self) -> crate::Registry {
        self.0
    }

    /// See [`crate::Admission::authenticate`].
    pub fn authenticate(&self, api_key: &str) -> Result<OrgId> {
        block_on(self.0.admission().authenticate(api_key))
    }

    /// See [`crate::Admission::create_api_key`].
    pub fn create_api_key(&self, org_name: &str) -> Result<(OrgId, ApiKey)> {
        block_on(self.0.admission().create_api_key(org_name))
    }

    /// See [`crate::Admission::add_api_key`].
    pub fn add_api_key(&self, org_name: &str, key: &ApiKey) -> Result<OrgId> {
        block_on(self.0.admission().add_api_key(org_name, key))
    }

    /// See [`crate::Registry::create`].
    pub fn create(&self, org: OrgId, draft: ChatbotDraft) -> Result<Chatbot> {
        block_on(self.0.create(org, draft))
    }

    /// See [`crate::Registry::get`].
    pub fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        block_on(self.0.get(org, id))
    }

    /// See [`crate::Registry::list`].
    pub fn list(&self, org: OrgId, query: &ListQuery) -> Result<Page> {
        block_on(self.0.list(org, query))
    }

    /// See [`crate::Registry::update`].
    pub fn update(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
    ) -> Result<Chatbot> {
        block_on(self.0.update(org, id, draft, mask, expected_etag))
    }

    /// See [`crate::Registry::delete`].
    pub fn delete(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<()> {
        block_on(self.0.delete(org, id, expected_etag))
    }
}
