//! Pagination of the list routes: items are numbered in creation order and listed newest first; a
//! cursor is the opaque form of the last number a page returned.

use crate::error::{GatewayError, GatewayResult};

/// Page size when the query names none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// The page size of `requested`: the default when absent, refused when 0 or above [`MAX_LIMIT`].
pub fn limit(requested: Option<usize>) -> GatewayResult<usize> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(GatewayError::invalid("limit must be at least 1")),
        Some(limit) if limit > MAX_LIMIT => Err(GatewayError::invalid(format!("limit must be at most {MAX_LIMIT}"))),
        Some(limit) => Ok(limit),
    }
}

/// The cursor after item number `seq`.
pub fn encode(seq: u64) -> String {
    format!("c{seq:x}")
}

/// The item number a cursor names.
pub fn decode(cursor: &str) -> GatewayResult<u64> {
    cursor.strip_prefix('c').and_then(|hex| u64::from_str_radix(hex, 16).ok()).ok_or_else(|| {
        GatewayError::invalid(format!("invalid cursor {cursor:?}; pass the next_cursor of the previous page"))
    })
}

/// One page of `items` (numbered, newest first): those older than `cursor`, at most `limit`, and the
/// cursor of the next page when more remain.
pub fn page<T>(
    items: impl Iterator<Item = (u64, T)>,
    cursor: Option<&str>,
    limit: usize,
) -> GatewayResult<(Vec<T>, Option<String>)> {
    let before = cursor.map(decode).transpose()?;
    let mut selected = items.filter(|(seq, _)| before.is_none_or(|before| *seq < before)).peekable();
    let mut page = Vec::new();
    let mut last = None;
    while page.len() < limit {
        let Some((seq, item)) = selected.next() else { break };
        last = Some(seq);
        page.push(item);
    }
    let next = match (selected.peek(), last) {
        (Some(_), Some(last)) => Some(encode(last)),
        _ => None,
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: u64) -> impl Iterator<Item = (u64, u64)> {
        (1..=n).rev().map(|seq| (seq, seq))
    }

    #[test]
    fn pages_walk_newest_first_until_the_last_has_no_cursor() {
        let (first, next) = page(numbered(5), None, 2).unwrap();
        assert_eq!(first, [5, 4]);
        let (second, next) = page(numbered(5), next.as_deref(), 2).unwrap();
        assert_eq!(second, [3, 2]);
        let (third, next) = page(numbered(5), next.as_deref(), 2).unwrap();
        assert_eq!((third, next), (vec![1], None));
        let (exact, next) = page(numbered(2), None, 2).unwrap();
        assert_eq!((exact, next), (vec![2, 1], None), "no cursor when nothing remains");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode(&encode(300)).unwrap(), 300);
        assert!(decode("300").is_err());
        assert!(decode("cxyz").is_err());
        assert!(page(numbered(1), Some("nope"), 1).is_err());
    }

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(limit(Some(2)).unwrap(), 2);
    }
}
