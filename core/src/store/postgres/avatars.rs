//! The `avatars` table: images stored and removed in the same transaction as their chatbot's change.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::avatar::{AvatarId, AvatarRef, ImageType, StoredAvatar};
use crate::error::{Error, Result};

use super::column;
use super::failure::Failure;

/// Removes the avatar images `ids`, in their chatbot's transaction.
pub(super) async fn remove_avatars(client: &impl GenericClient, ids: &[uuid::Uuid]) -> Result<(), Failure> {
    if !ids.is_empty() {
        let statement = client.prepare_cached("DELETE FROM avatars WHERE id = ANY($1)").await?;
        client.execute(&statement, &[&ids]).await?;
    }
    Ok(())
}

/// Stores an avatar image (again, harmlessly, if it is there already).
pub(super) async fn insert_avatar(client: &impl GenericClient, avatar: &StoredAvatar) -> Result<(), Failure> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO avatars ({AVATAR_COLUMNS}) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"
        ))
        .await?;
    let kind = avatar.reference.kind.extension();
    client.execute(&statement, &[avatar.reference.id.as_uuid(), &kind, &avatar.digest, &avatar.bytes]).await?;
    Ok(())
}

/// The columns an avatar image is stored in and read from, in [`avatar_from_row`]'s order.
pub(super) const AVATAR_COLUMNS: &str = "id, image_type, digest, bytes";

/// An avatar image from a row of [`AVATAR_COLUMNS`].
pub(super) fn avatar_from_row(row: &Row) -> Result<StoredAvatar> {
    let kind: String = column(row, 1)?;
    let kind = ImageType::from_extension(&kind).ok_or_else(|| Error::storage(format!("image type {kind:?}")))?;
    Ok(StoredAvatar {
        reference: AvatarRef { id: AvatarId::from_uuid(column(row, 0)?), kind },
        digest: column(row, 2)?,
        bytes: column(row, 3)?,
    })
}
