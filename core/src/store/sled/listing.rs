//! Listing order on sled: one key per chatbot, so that every page is a range scan that reads only the
//! page.
//!
//! Key: `l` (live; `k` for deleted ones) | organisation (16 bytes) | flags (1 byte: is_public, active) | `u64::MAX - created_at` (8,
//! big endian) | chatbot id (16). Within one flags value keys sort newest first, ties broken by id: the
//! order of [`PageCursor`]. A listing merges the (at most four) flag ranges its filter allows, so a
//! page costs the page plus at most four extra reads, however many chatbots the organisation has and
//! whatever the filter.

use std::ops::Bound;

use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Timestamp};
use crate::error::Result;
use crate::store::{Filter, PageCursor};

/// Bytes of a position (inverted creation time and id) at the end of every listing key.
const POSITION_LEN: usize = 24;

/// Which chatbots a listing holds: the live ones (`l`), or the deleted ones kept for undelete (`k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shelf {
    Live,
    Deleted,
}

fn prefix(shelf: Shelf, org: OrgId, is_public: bool, active: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18 + POSITION_LEN);
    key.push(match shelf {
        Shelf::Live => b'l',
        Shelf::Deleted => b'k',
    });
    key.extend_from_slice(org.as_bytes());
    key.push(u8::from(is_public) | (u8::from(active) << 1));
    key
}

/// The position bytes of a chatbot created at `created_at` with `id`: they sort in listing order.
fn position(created_at: Timestamp, id: ChatbotId) -> [u8; POSITION_LEN] {
    let mut bytes = [0u8; POSITION_LEN];
    bytes[..8].copy_from_slice(&(u64::MAX - created_at.as_micros() as u64).to_be_bytes());
    bytes[8..].copy_from_slice(id.as_bytes());
    bytes
}

/// The listing key of `chatbot`.
pub(super) fn key(chatbot: &Chatbot) -> Vec<u8> {
    key_on(Shelf::Live, chatbot)
}

/// The listing key of `chatbot` on `shelf`.
pub(super) fn key_on(shelf: Shelf, chatbot: &Chatbot) -> Vec<u8> {
    let mut key = prefix(shelf, chatbot.organization_id, chatbot.config.is_public, chatbot.config.active);
    key.extend_from_slice(&position(chatbot.created_at, chatbot.id));
    key
}

/// The position part of a listing key.
fn position_of(key: &[u8]) -> &[u8] {
    &key[key.len().saturating_sub(POSITION_LEN)..]
}

/// The chatbot a listing key lists.
fn chatbot_of(key: &[u8]) -> ChatbotId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&position_of(key)[8..]);
    ChatbotId::from_bytes(id)
}

/// Up to `limit` chatbots of `org` under `filter` after `after`, in order, and whether more follow:
/// a merge of the filter's flag ranges.
pub(super) fn page(
    tree: &sled::Tree,
    shelf: Shelf,
    org: OrgId,
    filter: Filter,
    after: Option<&PageCursor>,
    limit: usize,
) -> Result<(Vec<ChatbotId>, bool)> {
    let mut ranges: Vec<Box<dyn Iterator<Item = sled::Result<sled::IVec>>>> = filter
        .flag_combinations()
        .into_iter()
        .map(|(is_public, active)| {
            let prefix = prefix(shelf, org, is_public, active);
            let start = match after {
                Some(cursor) => {
                    Bound::Excluded([prefix.as_slice(), &position(cursor.created_at(), cursor.id())].concat())
                }
                None => Bound::Included(prefix.clone()),
            };
            let keys = tree.range::<Vec<u8>, _>((start, Bound::Unbounded)).keys();
            Box::new(keys.take_while(move |key| key.as_ref().map_or(true, |key| key.starts_with(&prefix))))
                as Box<dyn Iterator<Item = _>>
        })
        .collect();
    let mut heads: Vec<Option<sled::IVec>> =
        ranges.iter_mut().map(|range| range.next().transpose()).collect::<sled::Result<_>>()?;
    let mut ids = Vec::with_capacity(limit);
    loop {
        let first = heads.iter().enumerate().filter_map(|(i, head)| Some((position_of(head.as_ref()?), i))).min();
        let Some((_, i)) = first else { return Ok((ids, false)) };
        if ids.len() == limit {
            return Ok((ids, true));
        }
        if let Some(key) = heads[i].take() {
            ids.push(chatbot_of(&key));
        }
        heads[i] = ranges[i].next().transpose()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_chatbots_sort_first_and_ties_by_ascending_id() {
        let (a, b) = (ChatbotId::from_bytes([1; 16]), ChatbotId::from_bytes([2; 16]));
        assert!(position(Timestamp::from_micros(2), b) < position(Timestamp::from_micros(1), a));
        assert!(position(Timestamp::from_micros(1), a) < position(Timestamp::from_micros(1), b));
    }

    #[test]
    fn a_page_merges_the_flag_ranges_in_order_and_says_whether_more_follow() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let tree = sled::Config::new().path(dir.path()).open().expect("sled opens").open_tree("t").expect("a tree");
        let org = OrgId::new_random();
        let mut listed = Vec::new();
        for (i, (is_public, active)) in [(true, true), (false, true), (true, false), (false, false)].iter().enumerate()
        {
            let mut key = prefix(Shelf::Live, org, *is_public, *active);
            let id = ChatbotId::from_bytes([i as u8; 16]);
            key.extend_from_slice(&position(Timestamp::from_micros(i as i64), id));
            tree.insert(key, &[]).expect("inserted");
            listed.push(id);
        }
        listed.reverse(); // newest first
        let (all, more) = page(&tree, Shelf::Live, org, Filter::default(), None, 10).expect("a page");
        assert_eq!((all, more), (listed.clone(), false));
        let (first, more) = page(&tree, Shelf::Live, org, Filter::default(), None, 3).expect("a page");
        assert_eq!((first.as_slice(), more), (&listed[..3], true));
        let (public, _) =
            page(&tree, Shelf::Live, org, Filter { is_public: Some(true), active: None }, None, 10).expect("a page");
        assert_eq!(public, [listed[1], listed[3]]);
        let other = page(&tree, Shelf::Live, OrgId::new_random(), Filter::default(), None, 10).expect("a page");
        assert_eq!(other, (vec![], false));
    }
}
