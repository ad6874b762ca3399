//! The free addresses of one address block, as a set of disjoint intervals:
//! the lowest free address, taking any address and giving one back all cost
//! O(log k) in the number of intervals, never a scan over used addresses.

use std::collections::BTreeMap;

use ferrolb_config::model::{AddressBlock, AddressCount, IpFamily};

/// Whether an IPv4 address (as an integer) ends in `.0` or `.255`.
pub(crate) fn is_buggy(family: IpFamily, n: u128) -> bool {
    family == IpFamily::V4 && matches!(n & 0xff, 0 | 0xff)
}

/// Number of integers `x` in `first..=last` with `x % 256 == r`.
fn count_with_low_byte(first: u128, last: u128, r: u128) -> u128 {
    // Numbers in 0..=n with that low byte.
    let upto = |n: u128| if n < r { 0 } else { (n - r) / 256 + 1 };
    upto(last) - first.checked_sub(1).map_or(0, upto)
}

/// Free addresses of one block.
///
/// Invariants: intervals are disjoint, non-adjacent and inside the block; when
/// buggy addresses are avoided, no interval starts with one, so the first key
/// is always the lowest address that may be handed out.
#[derive(Debug, Clone)]
pub(crate) struct FreeSet {
    family: IpFamily,
    avoid_buggy: bool,
    /// start -> end (inclusive).
    intervals: BTreeMap<u128, u128>,
}

impl FreeSet {
    /// All addresses of the block free.
    pub(crate) fn new(block: &AddressBlock, avoid_buggy: bool) -> Self {
        let mut set = Self {
            family: block.family(),
            avoid_buggy,
            intervals: BTreeMap::new(),
        };
        set.insert_trimmed(block.first_u128(), block.last_u128());
        set
    }

    /// Addresses of the block that may be handed out (exact for any size).
    pub(crate) fn usable(block: &AddressBlock, avoid_buggy: bool) -> AddressCount {
        let size = block.size();
        if !(avoid_buggy && block.family() == IpFamily::V4) {
            return size;
        }
        let (first, last) = (block.first_u128(), block.last_u128());
        let buggy = count_with_low_byte(first, last, 0) + count_with_low_byte(first, last, 0xff);
        // An IPv4 block always fits a u128.
        AddressCount::from_u128(size.to_u128().unwrap_or(0).saturating_sub(buggy))
    }

    /// Whether the address may be handed out at all.
    pub(crate) fn is_usable(&self, n: u128) -> bool {
        !(self.avoid_buggy && is_buggy(self.family, n))
    }

    /// Whether nothing is free.
    pub(crate) fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The lowest free address.
    pub(crate) fn lowest(&self) -> Option<u128> {
        self.intervals.first_key_value().map(|(&s, _)| s)
    }

    /// Whether the address is free.
    pub(crate) fn contains(&self, n: u128) -> bool {
        self.intervals
            .range(..=n)
            .next_back()
            .is_some_and(|(_, &end)| n <= end)
    }

    /// Marks an address used; returns whether it was free.
    pub(crate) fn take(&mut self, n: u128) -> bool {
        let Some((&start, &end)) = self.intervals.range(..=n).next_back() else {
            return false;
        };
        if n > end {
            return false;
        }
        self.intervals.remove(&start);
        if start < n {
            self.intervals.insert(start, n - 1);
        }
        if n < end {
            self.insert_trimmed(n + 1, end);
        }
        true
    }

    /// Marks an address free again (a no-op for addresses never handed out).
    pub(crate) fn give_back(&mut self, n: u128) {
        if !self.is_usable(n) || self.contains(n) {
            return;
        }
        let mut start = n;
        let mut end = n;
        if let Some(before) = n.checked_sub(1)
            && let Some((&s, &e)) = self.intervals.range(..=before).next_back()
            && e == before
        {
            self.intervals.remove(&s);
            start = s;
        }
        if let Some(after) = n.checked_add(1)
            && let Some(e) = self.intervals.remove(&after)
        {
            end = e;
        }
        self.intervals.insert(start, end);
    }

    /// Inserts `start..=end`, dropping buggy addresses at its front (at most
    /// two in a row: `.255` then `.0`).
    fn insert_trimmed(&mut self, mut start: u128, end: u128) {
        while start <= end && !self.is_usable(start) {
            if start == end {
                return;
            }
            start += 1;
        }
        if start <= end {
            self.intervals.insert(start, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(a: &str, b: &str) -> AddressBlock {
        AddressBlock::new(a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }

    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    #[test]
    fn rule4_lowest_first_and_reuse_of_freed_addresses() {
        let b = block("10.0.0.1", "10.0.0.5");
        let mut f = FreeSet::new(&b, false);
        let mut got = Vec::new();
        while let Some(n) = f.lowest() {
            assert!(f.take(n));
            got.push(n);
        }
        assert_eq!(got, (v4("10.0.0.1")..=v4("10.0.0.5")).collect::<Vec<_>>());
        f.give_back(v4("10.0.0.4"));
        f.give_back(v4("10.0.0.2"));
        f.give_back(v4("10.0.0.3"));
        assert_eq!(f.intervals.len(), 1, "adjacent frees merge");
        assert_eq!(f.lowest(), Some(v4("10.0.0.2")));
        assert!(!f.take(v4("10.0.0.5")), "5 is used");
        assert!(f.take(v4("10.0.0.3")));
        assert_eq!(f.lowest(), Some(v4("10.0.0.2")));
    }

    #[test]
    fn rule4_avoid_buggy_ips_skips_dot0_and_dot255() {
        let b = block("10.0.0.254", "10.0.1.1");
        let mut f = FreeSet::new(&b, true);
        let mut got = Vec::new();
        while let Some(n) = f.lowest() {
            assert!(f.take(n));
            got.push(n);
        }
        assert_eq!(got, vec![v4("10.0.0.254"), v4("10.0.1.1")]);
        f.give_back(v4("10.0.0.255"));
        assert!(f.is_empty(), "a buggy address is never handed back");
        assert_eq!(
            FreeSet::usable(&b, true),
            AddressCount::from_u128(2),
            "usable count excludes .255 and .0"
        );
        let single = block("10.0.0.255", "10.0.0.255");
        assert!(FreeSet::new(&single, true).is_empty());
    }

    #[test]
    fn usable_count_is_exact_for_large_blocks() {
        let slash8 = AddressBlock::from_net("10.0.0.0/8".parse().unwrap());
        assert_eq!(
            FreeSet::usable(&slash8, true),
            AddressCount::from_u128((1 << 24) - 2 * (1 << 16))
        );
        let odd = block("10.0.0.255", "10.0.2.0");
        // .255 and .0 of 10.0.1 and 10.0.2.0 and 10.0.0.255, 10.0.1.255.
        assert_eq!(
            FreeSet::usable(&odd, true),
            AddressCount::from_u128(258 - 4)
        );
        let v6 = AddressBlock::from_net("::/0".parse().unwrap());
        assert_eq!(
            FreeSet::usable(&v6, true),
            v6.size(),
            "IPv6 has no buggy addresses"
        );
    }

    #[test]
    fn edges_of_the_ipv6_space_do_not_overflow() {
        let b = AddressBlock::from_net(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"
                .parse()
                .unwrap(),
        );
        let mut f = FreeSet::new(&b, true);
        assert!(f.take(u128::MAX));
        assert!(f.take(u128::MAX - 1));
        assert!(f.is_empty());
        f.give_back(u128::MAX);
        f.give_back(u128::MAX - 1);
        assert_eq!(f.lowest(), Some(u128::MAX - 1));
        let z = AddressBlock::from_net("::/127".parse().unwrap());
        let mut f = FreeSet::new(&z, false);
        assert!(f.take(0));
        f.give_back(0);
        assert_eq!(f.lowest(), Some(0));
    }
}
