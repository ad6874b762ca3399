//! Overlap detection between address blocks by sort and sweep: O(n log n)
//! for any number of blocks, exact over the whole IPv6 space.

use crate::model::AddressBlock;

/// Every block that overlaps a block starting before it (or at the same
/// address), as `(index, index of the block it overlaps)`.
///
/// Each offending block is reported once, against the earlier block that
/// reaches furthest, so the result has at most `blocks.len() - 1` entries.
pub fn overlaps(blocks: &[AddressBlock]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    // Ties on the start address keep input order, so the later-written block
    // is the one reported.
    order.sort_by_key(|&i| (blocks[i].family(), blocks[i].first_u128()));
    let mut found = Vec::new();
    // The block of the current family that reaches furthest so far.
    let mut reach: Option<usize> = None;
    for &i in &order {
        let block = &blocks[i];
        match reach {
            Some(r) if blocks[r].family() == block.family() => {
                if block.first_u128() <= blocks[r].last_u128() {
                    found.push((i, r));
                }
                if block.last_u128() > blocks[r].last_u128() {
                    reach = Some(i);
                }
            }
            _ => reach = Some(i),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn block(text: &str) -> AddressBlock {
        crate::validate::parse_block(text).unwrap()
    }

    /// (name, blocks, expected pairs of (offender, other)).
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(usize, usize)]);

    #[test]
    fn overlap_rule_names_both_offenders() {
        let cases: &[Case] = &[
            (
                "disjoint",
                &["10.0.0.0/24", "10.0.1.0/24", "fc00::/64"],
                &[],
            ),
            (
                "adjacent ranges do not overlap",
                &["10.0.0.0-10.0.0.9", "10.0.0.10-10.0.0.20"],
                &[],
            ),
            ("identical", &["10.0.0.0/24", "10.0.0.0/24"], &[(1, 0)]),
            ("contained", &["10.0.0.0/16", "10.0.5.0/24"], &[(1, 0)]),
            (
                "contained written first",
                &["10.0.5.0/24", "10.0.0.0/16"],
                &[(0, 1)],
            ),
            (
                "range touching a cidr",
                &["10.0.0.0/24", "10.0.0.255-10.0.1.5"],
                &[(1, 0)],
            ),
            ("v4 and v6 never overlap", &["0.0.0.0/0", "::/0"], &[]),
            ("v6 /0 against a /128", &["::/0", "fc00::1/128"], &[(1, 0)]),
            (
                "reach carries past a short block",
                &["10.0.0.0/16", "10.0.0.0/30", "10.0.200.0/24"],
                &[(1, 0), (2, 0)],
            ),
        ];
        for (name, texts, want) in cases {
            let blocks: Vec<AddressBlock> = texts.iter().map(|t| block(t)).collect();
            let mut got = overlaps(&blocks);
            got.sort_unstable();
            let mut want = want.to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn many_disjoint_blocks_have_no_overlap() {
        let blocks: Vec<AddressBlock> = (0..10_000u32)
            .map(|i| {
                let base = IpAddr::V4((0x0a00_0000 + i * 4).into());
                let last = IpAddr::V4((0x0a00_0000 + i * 4 + 3).into());
                AddressBlock::new(base, last).unwrap()
            })
            .rev()
            .collect();
        assert!(overlaps(&blocks).is_empty());
    }
}
