//! Moving a store's contents: out, as one moment's snapshot read while the service goes on taking
//! writes (`chatbotd export`, the admin API), and in, record by record, each checked as it arrives
//! (`chatbotd import`).

use std::sync::Arc;

use crate::chatbot::Chatbot;
use crate::error::{Error, Result};
use crate::rules::Rules;
use crate::secrets::Secrets;
use crate::store::{Record, Snapshot, Store};

/// Export and import over a store; see the module documentation.
pub struct Transfer {
    store: Arc<dyn Store>,
    rules: Arc<Rules>,
    /// Seals what an import brings in clear; opens what an export is asked to decrypt.
    secrets: Arc<Secrets>,
}

impl Transfer {
    /// Transfers in and out of `store`, checking imports against `rules`' allow-lists.
    pub(crate) fn new(store: Arc<dyn Store>, rules: Arc<Rules>, secrets: Arc<Secrets>) -> Self {
        Transfer { store, rules, secrets }
    }

    /// `record` with its secrets in clear, for an export a person asked to decrypt (to move between
    /// keyrings); any other record as it is.
    pub fn decrypted(&self, record: Record) -> Result<Record> {
        Ok(match record {
            Record::Chatbot(chatbot) => Record::Chatbot(Box::new(self.secrets.opened(*chatbot)?)),
            Record::Deleted { mut deleted } => {
                deleted.chatbot = self.secrets.opened(deleted.chatbot)?;
                Record::Deleted { deleted }
            }
            Record::Revision { mut revision } => {
                if let Some(content) = revision.snapshot.take() {
                    revision.snapshot = Some(Box::new(self.secrets.opened(*content)?));
                }
                Record::Revision { revision }
            }
            other @ (Record::Organisation(_) | Record::ApiKey(_) | Record::Avatar(_)) => other,
        })
    }

    /// `chatbot` with what it holds in clear sealed with the keyring (an import of a decrypted export).
    fn sealed(&self, mut chatbot: Chatbot) -> Chatbot {
        self.secrets.seal(chatbot.organization_id, chatbot.id, &mut chatbot.config, None);
        chatbot
    }

    /// Everything the store holds as it was at this moment, to read a batch of [`Record`]s at a time
    /// (organisations, then key records, then chatbots) while the service goes on taking writes.
    pub async fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        self.store.snapshot().await
    }

    /// Stores one exported record as it is. A chatbot's configuration is re-checked by its types as it
    /// is read, and its model and voice against these rules' allow-lists.
    /// Secrets that arrive in clear are sealed with the keyring.
    pub async fn import(&self, record: Record) -> Result<()> {
        self.secrets.forget_census();
        match record {
            Record::Organisation(organisation) => self.store.import_organisation(organisation).await,
            Record::ApiKey(key) => self.store.add_api_key(key).await,
            Record::Avatar(avatar) => self.store.import_avatar(avatar).await,
            Record::Deleted { deleted } => {
                storable_text(&deleted.chatbot.config)?;
                let mut deleted = *deleted;
                deleted.chatbot = self.sealed(deleted.chatbot);
                self.store.import_deleted(deleted).await
            }
            Record::Revision { revision } => {
                let mut revision = *revision;
                if let Some(snapshot) = revision.snapshot.take() {
                    storable_text(&snapshot.config)?;
                    revision.snapshot = Some(Box::new(self.sealed(*snapshot)));
                }
                self.store.import_revision(revision).await
            }
            Record::Chatbot(chatbot) => {
                let config = &chatbot.config;
                let allowed = |list: &crate::rules::AllowList, value: &str, field: crate::catalog::Field| {
                    list.check(value).map_err(|rejection| Error::invalid(rejection.at(field.json_path())))
                };
                storable_text(config)?;
                allowed(&self.rules.models, config.settings.model.as_str(), crate::catalog::Field::Model)?;
                if let Some(voice) = &config.voice {
                    allowed(&self.rules.voices, voice.voice.as_str(), crate::catalog::Field::VoiceName)?;
                }
                self.store.import_chatbot(self.sealed(*chatbot)).await
            }
        }
    }

    /// Whether the store holds nothing at all yet (no organisation), as an import target should.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.store.organisations().await?.is_empty())
    }
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer").finish_non_exhaustive()
    }
}

/// Refuses an imported configuration holding text that no engine may store (see
/// [`check_storable`](crate::domain::check_storable)), naming every field that does: stores written
/// before the rule may hold such text, and PostgreSQL cannot take it.
fn storable_text(config: &crate::chatbot::ChatbotConfig) -> Result<()> {
    fn walk(value: &serde_json::Value, path: &mut Vec<String>, violations: &mut Vec<crate::error::Violation>) {
        match value {
            serde_json::Value::String(text) => {
                if let Err(rejection) = crate::domain::check_storable(text, crate::domain::Lines::Many) {
                    violations.push(rejection.at(&path.join(".")));
                }
            }
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    path.push(name.clone());
                    walk(value, path, violations);
                    path.pop();
                }
            }
            serde_json::Value::Array(_)
            | serde_json::Value::Null
            | serde_json::Value::Bool(_)
            | serde_json::Value::Number(_) => {}
        }
    }
    let value = serde_json::to_value(config).map_err(Error::storage)?;
    let mut violations = Vec::new();
    walk(&value, &mut Vec::new(), &mut violations);
    if violations.is_empty() { Ok(()) } else { Err(Error::Invalid { violations }) }
}
