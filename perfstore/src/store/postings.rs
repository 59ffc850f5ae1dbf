//! Posting lists: the record IDs of one upload that carry one label, delta-varint encoded.
//!
//! The index keeps one row per (label, upload) holding all matching record IDs, instead of
//! upstream's one row per (record, label): eight labels on 100,000 records become a few
//! thousand rows instead of 800,000, and a two-term search intersects two decoded lists
//! instead of joining two million-row index ranges.

/// Encodes strictly increasing record IDs as LEB128 deltas.
pub(crate) fn encode(ids: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() + 4);
    let mut prev = 0u32;
    for (i, &id) in ids.iter().enumerate() {
        let mut delta = if i == 0 { id } else { id - prev };
        prev = id;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// Decodes a list written by [`encode`], appending to `out`. Corrupt bytes end the list
/// rather than panic.
pub(crate) fn decode_into(bytes: &[u8], out: &mut Vec<u32>) {
    let mut prev = 0u32;
    let mut first = true;
    let mut value = 0u32;
    let mut shift = 0u32;
    for &b in bytes {
        if shift >= 32 {
            return;
        }
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 != 0 {
            shift += 7;
            continue;
        }
        let id = if first {
            value
        } else {
            prev.wrapping_add(value)
        };
        first = false;
        out.push(id);
        prev = id;
        value = 0;
        shift = 0;
    }
}

/// Intersects two sorted lists into `a`.
pub(crate) fn intersect(a: &mut Vec<u32>, b: &[u32]) {
    let mut j = 0;
    a.retain(|&x| {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        j < b.len() && b[j] == x
    });
}

/// Unions sorted lists.
pub(crate) fn union(lists: Vec<Vec<u32>>) -> Vec<u32> {
    if lists.len() == 1 {
        return lists.into_iter().next().unwrap_or_default();
    }
    let mut all: Vec<u32> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(mut ids in prop::collection::vec(any::<u32>(), 0..200)) {
            ids.sort_unstable();
            ids.dedup();
            let mut out = Vec::new();
            decode_into(&encode(&ids), &mut out);
            prop_assert_eq!(out, ids);
        }

        #[test]
        fn intersect_is_set_intersection(a in prop::collection::btree_set(0u32..500, 0..100),
                                         b in prop::collection::btree_set(0u32..500, 0..100)) {
            let mut x: Vec<u32> = a.iter().copied().collect();
            let y: Vec<u32> = b.iter().copied().collect();
            intersect(&mut x, &y);
            let want: Vec<u32> = a.intersection(&b).copied().collect();
            prop_assert_eq!(x, want);
        }

        #[test]
        fn corrupt_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let mut out = Vec::new();
            decode_into(&bytes, &mut out);
        }
    }
}
