//! A chatbot's avatar: an image stored by the engine itself, atomically with the chatbot it belongs
//! to, and served at a public URL that changes whenever the image does.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result, Violation, ViolationCode};

/// Largest avatar image, in bytes.
pub const MAX_AVATAR_BYTES: usize = 1024 * 1024;

/// Largest upload carrying an avatar (a REST body, a gRPC message): the image and its framing.
pub const MAX_AVATAR_UPLOAD_BYTES: usize = MAX_AVATAR_BYTES + 64 * 1024;

/// Largest width and height of an avatar image, in pixels.
pub const MAX_AVATAR_SIDE_PX: u32 = 2048;

/// Where avatars are served, under the service's public URL.
pub const AVATAR_ROUTE: &str = "/api/public/avatars";

/// The image types an avatar may have. The type is decided by the image's content, never by what
/// the client declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/webp`.
    Webp,
    /// `image/gif`.
    Gif,
}

impl ImageType {
    /// The media type it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    /// The file extension of its URL.
    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Png => "png",
            ImageType::Jpeg => "jpg",
            ImageType::Webp => "webp",
            ImageType::Gif => "gif",
        }
    }

    /// The type whose [`extension`](ImageType::extension) this is.
    pub fn from_extension(extension: &str) -> Option<ImageType> {
        [ImageType::Png, ImageType::Jpeg, ImageType::Webp, ImageType::Gif]
            .into_iter()
            .find(|k| k.extension() == extension)
    }

    fn from_format(format: image::ImageFormat) -> Option<ImageType> {
        #[allow(clippy::wildcard_enum_match_arm, reason = "every other format is refused")]
        match format {
            image::ImageFormat::Png => Some(ImageType::Png),
            image::ImageFormat::Jpeg => Some(ImageType::Jpeg),
            image::ImageFormat::WebP => Some(ImageType::Webp),
            image::ImageFormat::Gif => Some(ImageType::Gif),
            _ => None,
        }
    }
}

/// An avatar image as a client sent it, checked: at most [`MAX_AVATAR_BYTES`], a PNG, JPEG, WebP or
/// GIF by its content, at most [`MAX_AVATAR_SIDE_PX`] a side.
#[derive(Clone, PartialEq, Eq)]
pub struct AvatarImage {
    kind: ImageType,
    digest: [u8; 32],
    bytes: Vec<u8>,
}

impl fmt::Debug for AvatarImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvatarImage").field("kind", &self.kind).field("bytes", &self.bytes.len()).finish()
    }
}

impl AvatarImage {
    /// Checks `bytes`: [`Error::ImageTooLarge`] beyond the size limit, [`Error::UnsupportedImage`]
    /// for anything that is not a readable PNG, JPEG, WebP or GIF, and a violation of `avatar` when it
    /// is wider or taller than allowed.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() > MAX_AVATAR_BYTES {
            return Err(Error::ImageTooLarge { max_bytes: MAX_AVATAR_BYTES });
        }
        let format = image::guess_format(&bytes).map_err(|_| Error::UnsupportedImage)?;
        let kind = ImageType::from_format(format).ok_or(Error::UnsupportedImage)?;
        let reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
        let (width, height) = reader.into_dimensions().map_err(|_| Error::UnsupportedImage)?;
        if width > MAX_AVATAR_SIDE_PX || height > MAX_AVATAR_SIDE_PX {
            let message = format!("must be at most {MAX_AVATAR_SIDE_PX} pixels a side (got {width}x{height})");
            return Err(Error::invalid(Violation::new("avatar", ViolationCode::OutOfRange, message)));
        }
        let digest = Sha256::digest(&bytes).into();
        Ok(AvatarImage { kind, digest, bytes })
    }

    /// Its type.
    pub fn kind(&self) -> ImageType {
        self.kind
    }

    /// The SHA-256 of its bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Stores the image under a fresh id, for `chatbot`.
    pub(crate) fn into_stored(self) -> StoredAvatar {
        StoredAvatar {
            reference: AvatarRef { id: AvatarId(Uuid::new_v4()), kind: self.kind },
            digest: hex::encode(self.digest),
            bytes: self.bytes,
        }
    }
}

/// The id of one stored avatar image: random (a UUIDv4), so that its public URL cannot be guessed, and
/// new with every upload, so that the URL changes when the image does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AvatarId(Uuid);

impl AvatarId {
    /// The id as a UUID (for engines with a UUID type).
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// Rebuilds an id from a stored UUID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        AvatarId(uuid)
    }

    /// The 16 bytes of the id, as stored in keys.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

/// What a chatbot records of its avatar: which image, and of what type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarRef {
    /// The stored image.
    pub id: AvatarId,
    /// Its type.
    pub kind: ImageType,
}

impl AvatarRef {
    /// The image's file name in its URL: `<id>.<extension>`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.id.0.hyphenated(), self.kind.extension())
    }

    /// The image's public URL under the service's public URL `base` (`https://bots.example.com`).
    pub fn url(&self, base: &str) -> String {
        format!("{}{AVATAR_ROUTE}/{}", base.trim_end_matches('/'), self.file_name())
    }

    /// The reference a URL's file name names, if it is one (`<id>.<extension>`, lowercase).
    pub fn from_file_name(name: &str) -> Option<AvatarRef> {
        let (id, extension) = name.split_once('.')?;
        let uuid = Uuid::try_parse(id).ok()?;
        if uuid.hyphenated().to_string() != id {
            return None;
        }
        Some(AvatarRef { id: AvatarId(uuid), kind: ImageType::from_extension(extension)? })
    }
}

/// An avatar image as stored: its reference, the hex SHA-256 of its bytes (its entity tag), and the
/// bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAvatar {
    /// Which image, of what type.
    pub reference: AvatarRef,
    /// Hex SHA-256 of `bytes`.
    pub digest: String,
    /// The image.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

impl fmt::Debug for StoredAvatar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAvatar")
            .field("reference", &self.reference)
            .field("digest", &self.digest)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Bytes as base64 in exports.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid PNG of `width` x `height` (encoded by the image crate itself).
    pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let image = image::RgbaImage::new(width, height);
        image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encodes");
        bytes
    }

    #[test]
    fn the_type_comes_from_the_content() {
        let image = AvatarImage::parse(png(4, 4)).expect("a PNG");
        assert_eq!(image.kind(), ImageType::Png);
        for not_an_image in [b"<html><script>alert(1)</script></html>".to_vec(), Vec::new(), b"\x89PNG".to_vec()] {
            assert!(matches!(AvatarImage::parse(not_an_image), Err(Error::UnsupportedImage)));
        }
    }

    #[test]
    fn sizes_and_sides_are_bounded() {
        assert!(AvatarImage::parse(png(MAX_AVATAR_SIDE_PX, 1)).is_ok());
        assert!(matches!(AvatarImage::parse(png(MAX_AVATAR_SIDE_PX + 1, 1)), Err(Error::Invalid { .. })));
        let mut huge = png(1, 1);
        huge.resize(MAX_AVATAR_BYTES + 1, 0);
        assert!(matches!(AvatarImage::parse(huge), Err(Error::ImageTooLarge { .. })));
    }

    #[test]
    fn a_reference_round_trips_through_its_file_name_only() {
        let stored = AvatarImage::parse(png(1, 1)).expect("a PNG").into_stored();
        let name = stored.reference.file_name();
        assert_eq!(AvatarRef::from_file_name(&name), Some(stored.reference));
        assert!(stored.reference.url("https://bots.example.com/").starts_with("https://bots.example.com/api/public/"));
        for wrong in [name.replace(".png", ".jpg"), name.to_uppercase(), name.replace('-', ""), "x.png".into()] {
            assert_ne!(AvatarRef::from_file_name(&wrong), Some(stored.reference), "{wrong}");
        }
    }
}
