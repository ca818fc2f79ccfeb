//! The stored form of a chatbot: one schema-version byte, then JSON. Reading dispatches on the
//! version, so a later schema can migrate old records as they are read. An avatar image is stored as
//! a version byte, its type, its digest and its bytes (no JSON: it is binary and up to a megabyte).

use crate::avatar::{AvatarId, AvatarRef, ImageType, StoredAvatar};
use crate::chatbot::Chatbot;
use crate::error::{Error, Result};
use crate::history::StoredRevision;

/// The schema written today.
const SCHEMA_V1: u8 = 1;

/// The bytes stored for `chatbot`.
pub(super) fn encode(chatbot: &Chatbot) -> Result<Vec<u8>> {
    let mut bytes = vec![SCHEMA_V1];
    serde_json::to_writer(&mut bytes, chatbot).map_err(Error::storage)?;
    Ok(bytes)
}

/// A typical record (the contract's defaults), decoded where no record was found so that a miss
/// costs what a hit does.
pub(super) static STAND_IN: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let draft = crate::chatbot::ChatbotDraft { name: Some("stand-in".into()), ..Default::default() };
    let rules = crate::rules::Rules::default();
    let proposal = rules.check(None, &draft, crate::rules::Rules::create_mask(&draft)).expect("a valid draft");
    encode(&Chatbot::new(crate::domain::OrgId::new_random(), proposal.config)).unwrap_or_default()
});

/// The bytes stored for an avatar image: version, type, the 32-byte digest, the image.
pub(super) fn encode_avatar(avatar: &StoredAvatar) -> Result<Vec<u8>> {
    let digest = hex::decode(&avatar.digest).map_err(Error::storage)?;
    let kind = IMAGE_TYPES.iter().position(|k| *k == avatar.reference.kind).unwrap_or_default() as u8;
    Ok([&[SCHEMA_V1, kind], digest.as_slice(), &avatar.bytes].concat())
}

/// The avatar image `id` stored as `bytes`.
pub(super) fn decode_avatar(id: AvatarId, bytes: &[u8]) -> Result<StoredAvatar> {
    match bytes {
        [SCHEMA_V1, kind, rest @ ..] if rest.len() >= 32 => {
            let kind = *IMAGE_TYPES.get(usize::from(*kind)).ok_or_else(|| Error::storage("unknown image type"))?;
            let (digest, image) = rest.split_at(32);
            Ok(StoredAvatar { reference: AvatarRef { id, kind }, digest: hex::encode(digest), bytes: image.to_vec() })
        }
        _ => Err(Error::storage("a malformed avatar record")),
    }
}

/// Image types by their stored number; never reorder, only append.
const IMAGE_TYPES: [ImageType; 4] = [ImageType::Png, ImageType::Jpeg, ImageType::Webp, ImageType::Gif];

/// The bytes stored for a revision: the schema byte, then JSON.
pub(super) fn encode_revision(revision: &StoredRevision) -> Result<Vec<u8>> {
    let mut bytes = vec![SCHEMA_V1];
    serde_json::to_writer(&mut bytes, revision).map_err(Error::storage)?;
    Ok(bytes)
}

/// The revision stored as `bytes`.
pub(super) fn decode_revision(bytes: &[u8]) -> Result<StoredRevision> {
    match bytes.split_first() {
        Some((&SCHEMA_V1, json)) => serde_json::from_slice(json).map_err(Error::storage),
        Some((version, _)) => Err(Error::storage(format!("unknown revision schema version {version}"))),
        None => Err(Error::storage("empty revision record")),
    }
}

/// The chatbot stored as `bytes`, re-checked by the types' own parsers.
pub(super) fn decode(bytes: &[u8]) -> Result<Chatbot> {
    match bytes.split_first() {
        Some((&SCHEMA_V1, json)) => serde_json::from_slice(json).map_err(Error::storage),
        Some((version, _)) => Err(Error::storage(format!("unknown chatbot schema version {version}"))),
        None => Err(Error::storage("empty chatbot record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the sled engine wrote it before this version (schema 1), kept so that every later
    /// version proves it still reads what is on disk.
    const RECORD_V1: &str = include_str!("../../../tests/fixtures/sled-chatbot-v1.json");

    #[test]
    fn a_record_written_by_an_earlier_version_reads_back_whole() {
        let bytes = [&[SCHEMA_V1][..], RECORD_V1.trim_end().as_bytes()].concat();
        let chatbot = decode(&bytes).expect("the stored record decodes");
        assert_eq!(chatbot.id.to_string(), "01a22ba0-c750-71d8-aa95-db940c2ace32");
        assert_eq!((chatbot.revision, chatbot.config.slug.as_str()), (3, "fixture-bot"));
        assert_eq!(chatbot.config.description.as_str(), "A helpful support assistant\nover two lines");
        assert_eq!(chatbot.config.settings.snippet.language.as_str(), "en-GB");
        let voice = chatbot.config.voice.as_ref().expect("its voice agent");
        assert_eq!((voice.voice.as_str(), voice.agent_id.as_ref().map(|a| a.as_str())), ("sage", Some("agent-7")));
        // Written again, it is the same record: nothing was lost or renamed on the way.
        let again: serde_json::Value = serde_json::from_slice(&encode(&chatbot).expect("encodes")[1..]).expect("JSON");
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(RECORD_V1).expect("JSON"));
    }
}
