//! The keyring: named 256-bit keys, the first of which seals and all of which open. It is given to the
//! service (`--secret-keys-file`, `CHATBOTD_SECRET_KEYS`) or, on the embedded engine's first start,
//! made in the data directory; the database never sees it.
//!
//! Its text form is one entry per line (or per comma): `key-id=<32 bytes in base64>`; blank lines and
//! lines starting with `#` are skipped. To rotate, put a new entry first, restart or reload, run
//! `chatbotd secrets rotate`, and drop the old entry once nothing is sealed under it.

use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::domain::{ChatbotId, OpenAiKey, OrgId, SealedSecret};
use crate::error::{Error, Result};

/// Bytes of a key.
const KEY_BYTES: usize = 32;
/// Bytes of a nonce: AES-GCM's 96 bits, random for every value sealed.
const NONCE_BYTES: usize = 12;
/// Most characters of a key id.
const KEY_ID_MAX_CHARS: usize = 64;
/// What every sealed value's associated data starts with: the format, so that a later one never
/// opens this one's values by mistake.
const CONTEXT: &[u8] = b"chatbotd secret v1";

/// The keys that seal and open stored secrets; see the module documentation.
pub struct Keyring {
    /// In the order given: the first seals.
    keys: Vec<(String, Aes256Gcm)>,
}

/// Where a sealed value belongs: its associated data. A value moved to another chatbot, another
/// organisation or another field does not open.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The owning organisation.
    pub org: OrgId,
    /// The chatbot.
    pub chatbot: ChatbotId,
    /// The field's JSON path (`openai_api_key`).
    pub field: &'a str,
}

impl Place<'_> {
    fn associated_data(&self) -> Vec<u8> {
        [CONTEXT, b"\0", self.field.as_bytes(), b"\0", self.org.as_bytes(), self.chatbot.as_bytes()].concat()
    }
}

impl Keyring {
    /// The keyring written as `text` (see the module documentation). Refuses an empty keyring, a key
    /// that is not 32 bytes of base64, an id with characters other than letters, digits, `-`, `_` and
    /// `.`, and an id given twice.
    pub fn parse(text: &str) -> Result<Keyring> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        let lines = text.lines().map(str::trim).filter(|line| !line.starts_with('#'));
        let entries = lines.flat_map(|line| line.split(',')).map(str::trim);
        for (number, entry) in entries.filter(|e| !e.is_empty()).enumerate() {
            let bad = |why: &str| Error::Keyring(format!("entry {} of the keyring: {why}", number + 1));
            let (id, key) = entry.split_once('=').ok_or_else(|| bad("expected `key-id=<base64 key>`"))?;
            let (id, key) = (id.trim(), key.trim());
            let id_ok = !id.is_empty()
                && id.len() <= KEY_ID_MAX_CHARS
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !id_ok {
                return Err(bad("a key id is 1 to 64 letters, digits, `-`, `_` or `.`"));
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err(bad(&format!("the key id `{id}` is given twice")));
            }
            let bytes = STANDARD
                .decode(key)
                .or_else(|_| STANDARD_NO_PAD.decode(key))
                .map_err(|_| bad("the key is not base64"))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad(&format!("the key is {} bytes; a key is 32 bytes (256 bits)", bytes.len())));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad("the key is not 32 bytes"))?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(Error::Keyring("the keyring holds no key".into()));
        }
        Ok(Keyring { keys })
    }

    /// A new keyring of one random key, with its text form (to be kept somewhere safe).
    pub fn generate() -> (Keyring, String) {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).expect("the operating system's random source is available");
        let id = format!("key-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
        let text = format!(
            "# chatbotd's keyring: the first key seals stored secrets, every key opens them.\n\
             # Keep a copy apart from the data: without it, stored secrets cannot be opened.\n\
             {id}={}\n",
            STANDARD.encode(key)
        );
        (Keyring::parse(&text).expect("a generated keyring parses"), text)
    }

    /// The keyring in the file at `path`.
    pub fn read(path: &Path) -> Result<Keyring> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::Keyring(format!("cannot read the keyring {}: {err}", path.display())))?;
        Keyring::parse(&text).map_err(|err| Error::Keyring(format!("{}: {err}", path.display())))
    }

    /// The keyring in the file at `path`, made there (readable by its owner only) when there is none
    /// yet; `true` with a keyring just made.
    pub fn read_or_create(path: &Path) -> Result<(Keyring, bool)> {
        if path.exists() {
            return Ok((Keyring::read(path)?, false));
        }
        let (keyring, text) = Keyring::generate();
        let cannot =
            |err: std::io::Error| Error::Keyring(format!("cannot write the keyring {}: {err}", path.display()));
        let mut file = owner_only(path).map_err(cannot)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(cannot)?;
        Ok((keyring, true))
    }

    /// The id of the key that seals.
    pub fn sealing_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The ids of every key, the sealing one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// `clear`, sealed under the first key for `place`, with a fresh random nonce.
    pub fn seal(&self, clear: &OpenAiKey, place: Place<'_>) -> SealedSecret {
        let (key_id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system's random source is available");
        let aad = place.associated_data();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: clear.expose().as_bytes(), aad: &aad })
            .expect("AES-GCM seals any value shorter than 64 GiB");
        SealedSecret {
            key_id: key_id.clone(),
            sealed: STANDARD.encode([nonce.as_slice(), &ciphertext].concat()),
            masked: clear.masked(),
        }
    }

    /// The clear value of `sealed`, if this keyring holds its key and it was sealed for `place`.
    pub fn open(&self, sealed: &SealedSecret, place: Place<'_>) -> Result<OpenAiKey> {
        let cannot =
            |why: &str| Error::storage(format!("cannot open the secret sealed under `{}`: {why}", sealed.key_id));
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| cannot("the keyring has no such key"))?;
        let bytes = STANDARD.decode(&sealed.sealed).map_err(|_| cannot("not base64"))?;
        if bytes.len() < NONCE_BYTES {
            return Err(cannot("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let aad = place.associated_data();
        let clear = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| cannot("it does not belong to this chatbot, or was altered"))?;
        let clear = String::from_utf8(clear).map_err(|_| cannot("not UTF-8"))?;
        OpenAiKey::parse(&clear).map_err(|_| cannot("not a valid key"))
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.key_ids().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// A new file at `path` that only its owner may read and write.
fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(field: &str) -> Place<'_> {
        Place { org: OrgId::new_random(), chatbot: ChatbotId::new_random(), field }
    }

    fn key() -> OpenAiKey {
        OpenAiKey::parse("sk-proj-abcdefghijklmnop1234").unwrap()
    }

    #[test]
    fn a_sealed_value_opens_for_its_place_only() {
        let (keyring, _) = Keyring::generate();
        let here = place("openai_api_key");
        let sealed = keyring.seal(&key(), here);
        assert_eq!(keyring.open(&sealed, here).unwrap(), key());
        assert!(!sealed.sealed.contains("abcdef") && sealed.masked == "sk-...1234");
        let elsewhere = Place { chatbot: ChatbotId::new_random(), ..here };
        assert!(keyring.open(&sealed, elsewhere).is_err(), "another chatbot");
        assert!(keyring.open(&sealed, Place { org: OrgId::new_random(), ..here }).is_err(), "another organisation");
        assert!(keyring.open(&sealed, Place { field: "other", ..here }).is_err(), "another field");
        assert_ne!(keyring.seal(&key(), here).sealed, sealed.sealed, "a fresh nonce every time");
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = "old=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let new = "new=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let before = Keyring::parse(old).unwrap();
        let after = Keyring::parse(&format!("# rotated\n{new}\n\n{old}\n")).unwrap();
        assert_eq!(after.key_ids().collect::<Vec<_>>(), ["new", "old"]);
        let here = place("openai_api_key");
        let sealed = before.seal(&key(), here);
        assert_eq!(after.open(&sealed, here).unwrap(), key());
        assert_eq!(after.seal(&key(), here).key_id, "new");
        assert!(Keyring::parse(new).unwrap().open(&sealed, here).is_err(), "a dropped key opens nothing");
        assert_eq!(Keyring::parse(&format!("{new},{old}")).unwrap().sealing_key_id(), "new");
    }

    #[test]
    fn a_malformed_keyring_is_refused_with_its_reason() {
        for (text, reason) in [
            ("", "no key"),
            ("k1", "expected"),
            ("k1=AAAA", "is 3 bytes"),
            ("k 1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "key id"),
            ("k1=!!!", "not base64"),
            (
                "k1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nk1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
                "twice",
            ),
        ] {
            let refused = Keyring::parse(text).map(drop).unwrap_err().to_string();
            assert!(refused.contains(reason), "{text:?}: {refused}");
        }
    }

    #[test]
    fn a_keyring_made_on_first_use_is_read_back_and_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret-keys");
        let (made, created) = Keyring::read_or_create(&path).unwrap();
        assert!(created);
        let (read, created) = Keyring::read_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.sealing_key_id(), read.sealing_key_id());
        let here = place("openai_api_key");
        assert_eq!(read.open(&made.seal(&key(), here), here).unwrap(), key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
