//! Which connections of a text log can hold a trace's matches (`dsaccess trace` from
//! logs), found in one cheap pass so that the tokenizer reads only their lines.
//!
//! A trace's selectors that follow a connection (the identity bound on it, its client,
//! a search's filter value, an operation's target, verb or result code) are answered by
//! a few lines of each connection: its BINDs and their RESULTs, AUTOBIND and TLS `client
//! bound as` lines, its open line or HAProxy line, its requests and results. Those lines
//! are found by a byte search for the words that begin their fields, and read by the
//! tokenizer's own field parsers (`strict`, then `general`), so a value here is the value
//! the join sees.
//!
//! The answer is a superset: a connection listed may hold no match (the exact test is
//! made on the joined operations), but a connection that holds one is never left out.
//! Each selector gets its own list, as its evidence may be in another block than the
//! match (a BIND in yesterday's file, the searches today): the caller unions each
//! selector's lists over a server's blocks, then intersects the selectors.

use std::collections::BTreeSet;
use std::net::IpAddr;

use memchr::{memchr, memrchr};

use crate::dn::canonical;
use crate::fields::{kind_of, Fields, Kind, F, FIELD_COUNT};
use crate::head::{parse_head_cached, Head, StampCache};
use crate::strict::read_fields;

/// What a trace selects by, in comparison form: DNs canonical (`dn::canonical`), filter
/// values lower-cased. An empty list selects nothing by that selector.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub bind_dns: Vec<String>,
    pub networks: Vec<Network>,
    pub filter_values: Vec<String>,
    pub targets: Vec<String>,
    /// `targets` match the entries below them too
    pub subtree: bool,
    /// request kinds, as `Kind::name` spells them (`DEL`)
    pub verbs: Vec<String>,
    /// result codes
    pub errs: Vec<i64>,
    /// a time window, UTC ns (`since <= ts < until`; None: open on that side); followed
    /// when either side is given
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// An address range: `10.1.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// `ADDRESS` or `ADDRESS/PREFIX`; None when it is neither.
    ///
    /// ```
    /// use dsaccess_core::trace::Network;
    /// let n = Network::parse("10.1.2.0/24").unwrap();
    /// assert!(n.contains("10.1.2.77".parse().unwrap()));
    /// assert!(!n.contains("10.1.3.1".parse().unwrap()));
    /// assert!(Network::parse("10.1.2.0/33").is_none() && Network::parse("host").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(Network { address, prefix })
    }

    /// Whether `ip` is in the range. An IPv4 address written as IPv6 (`::ffff:a.b.c.d`)
    /// is its IPv4 address here: the list is a superset.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (have, want, bits) = match (ip, self.address) {
            (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
            (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || have >> shift == want >> shift
    }
}

/// Per selector, the connections of a block that may match it (sorted, each once).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Suspects {
    pub bind_dn: Vec<i64>,
    pub client_ip: Vec<i64>,
    pub filter_value: Vec<i64>,
    pub target: Vec<i64>,
    pub verb: Vec<i64>,
    pub err: Vec<i64>,
    /// connections with a line in the window
    pub time: Vec<i64>,
}

/// The connections of a newline-aligned block of a text log that may hold a match,
/// per selector of `wanted` that is given.
pub fn suspects(data: &[u8], wanted: &Wanted) -> Suspects {
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut word = |w: &str| words.push(w.as_bytes().to_vec());
    if !wanted.bind_dns.is_empty() || !wanted.targets.is_empty() {
        word("dn=\"");
    }
    if !wanted.bind_dns.is_empty() {
        word(" client bound as ");
    }
    if !wanted.networks.is_empty() {
        word(" connection from ");
        word(" new_address_from=");
    }
    if !wanted.filter_values.is_empty() {
        word(" filter=\"");
    }
    if !wanted.targets.is_empty() {
        word(" base=\"");
    }
    for verb in &wanted.verbs {
        word(&format!(" {verb}")); // (" MOD" finds MODRDN too: a superset)
    }
    for err in &wanted.errs {
        word(&format!(" RESULT err={err} "));
    }
    let mut sets: [BTreeSet<i64>; 6] = Default::default();
    let mut stamps = StampCache::default();
    for (start, end) in lines_with(data, &words) {
        let text = String::from_utf8_lossy(&data[start..end]);
        let Some((conn, kind, fields)) = read_line(&text, &mut stamps) else { continue };
        for (set, hit) in sets.iter_mut().zip(matches(wanted, kind, &fields)) {
            if hit {
                set.insert(conn);
            }
        }
    }
    let [bind_dn, client_ip, filter_value, target, verb, err] =
        sets.map(|s| s.into_iter().collect());
    let time = if wanted.since.is_some() || wanted.until.is_some() {
        in_window(data, wanted.since.unwrap_or(i64::MIN), wanted.until.unwrap_or(i64::MAX))
    } else {
        Vec::new()
    };
    Suspects { bind_dn, client_ip, filter_value, target, verb, err, time }
}

/// The client connections with a line in `since <= ts < until`: an operation in the
/// window has its request or its RESULT there. Every line's frame is read (no body).
fn in_window(data: &[u8], since: i64, until: i64) -> Vec<i64> {
    let mut found = BTreeSet::new();
    let mut stamps = StampCache::default();
    let mut start = 0;
    while start < data.len() {
        let end = memchr(b'\n', &data[start..]).map_or(data.len(), |n| start + n + 1);
        let text = String::from_utf8_lossy(&data[start..end]);
        if let Head::Event(ids) = parse_head_cached(&text, &mut stamps) {
            if let Some(conn) = ids.conn.filter(|_| !ids.internal && (since..until).contains(&ids.ts)) {
                found.insert(conn);
            }
        }
        start = end;
    }
    found.into_iter().collect()
}

/// The (start, end) of each line holding one of `words`, in order, each once. Each
/// byte is searched for a line's start once per word: a block of one long line full of
/// the words (a damaged or hostile log) costs no more than a block of short ones.
fn lines_with(data: &[u8], words: &[Vec<u8>]) -> Vec<(usize, usize)> {
    let mut starts: Vec<usize> = Vec::new();
    for word in words {
        let (mut start, mut searched) = (0, 0);
        for at in memchr::memmem::find_iter(data, word) {
            if let Some(n) = memrchr(b'\n', &data[searched..at]) {
                start = searched + n + 1;
            }
            searched = at;
            starts.push(start);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts.into_iter()
        .map(|s| (s, memchr(b'\n', &data[s..]).map_or(data.len(), |n| s + n + 1)))
        .collect()
}

/// A client connection's event: its number, kind and fields as the tokenizer reads
/// them; None for other lines (internal operations, headers, rejects).
fn read_line<'a>(text: &'a str, stamps: &mut StampCache) -> Option<(i64, Kind, Fields<'a>)> {
    let Head::Event(ids) = parse_head_cached(text, stamps) else { return None };
    let conn = ids.conn.filter(|_| !ids.internal)?;
    let body = &text[ids.body_at..];
    let kind = kind_of(body)?;
    let mut fields: Fields<'_> = [None; FIELD_COUNT];
    read_fields(kind, body, true, &mut fields)?;
    Some((conn, kind, fields))
}

/// Which selectors (in `Suspects`' order) one event is evidence for.
fn matches(wanted: &Wanted, kind: Kind, f: &Fields<'_>) -> [bool; 6] {
    let dn = f[F::Dn as usize].map(canonical);
    let bind = matches!(kind, Kind::Bind | Kind::Result | Kind::Autobind | Kind::Tls)
        && dn.as_ref().is_some_and(|d| wanted.bind_dns.contains(d));
    let client = matches!(kind, Kind::Connect | Kind::Haproxy)
        && f[F::ClientIp as usize].and_then(|ip| ip.parse::<IpAddr>().ok())
            .is_some_and(|ip| wanted.networks.iter().any(|n| n.contains(ip)));
    let filter = kind == Kind::Srch && f[F::Filter as usize].is_some_and(|text| {
        let text = text.to_lowercase();
        wanted.filter_values.iter().any(|v| text.contains(v.as_str()))
    });
    let under = |d: &str| wanted.targets.iter().any(|w| {
        d == w || (wanted.subtree && d.len() > w.len() && d.ends_with(w.as_str())
                   && d.as_bytes()[d.len() - w.len() - 1] == b',')
    });
    let target = dn.as_deref().is_some_and(under)
        || f[F::Base as usize].is_some_and(|b| under(&canonical(b)));
    let verb = wanted.verbs.iter().any(|v| v == kind.name());
    let err = kind == Kind::Result && f[F::Err as usize].and_then(|e| e.parse::<i64>().ok())
        .is_some_and(|e| wanted.errs.contains(&e));
    [bind, client, filter, target, verb, err]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[07/Dec/2026:02:00:00.000000000 +0100] conn=11 fd=64 slot=64 connection from 10.1.2.3 to 10.0.0.1
[07/Dec/2026:02:00:00.100000000 +0100] conn=11 op=0 BIND dn=\"UID=svc-sync, ou=People,dc=x\" method=128 version=3
[07/Dec/2026:02:00:00.200000000 +0100] conn=11 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.000100000 optime=0.000100000 etime=0.000200000 dn=\"uid=svc-sync,ou=people,dc=x\"
[07/Dec/2026:02:00:01.000000000 +0100] conn=12 fd=65 slot=65 connection from 192.168.7.9 to 10.0.0.1
[07/Dec/2026:02:00:01.100000000 +0100] conn=12 op=0 BIND dn=\"uid=svc-sync,ou=people,dc=x\" method=128 version=3
[07/Dec/2026:02:00:01.200000000 +0100] conn=12 op=0 RESULT err=49 tag=97 nentries=0 wtime=0.000100000 optime=0.000100000 etime=0.000200000
[07/Dec/2026:02:00:02.000000000 +0100] conn=13 op=4 SRCH base=\"ou=Groups,dc=x\" scope=2 filter=\"(memberUid=ALICE)\" attrs=ALL
[07/Dec/2026:02:00:03.000000000 +0100] conn=14 op=1 DEL dn=\"cn=old,ou=Groups, dc=X\"
[07/Dec/2026:02:00:04.000000000 +0100] conn=15 fd=66 slot=66 connection from ::ffff:10.1.2.200 to ::1
[07/Dec/2026:02:00:04.100000000 +0100] conn=16 TLS1.3 client bound as uid=svc-sync,ou=People,dc=x
[07/Dec/2026:02:00:05.000000000 +0100] conn=Internal(0) op=0(1)(0) SRCH base=\"ou=Groups,dc=x\" scope=2 filter=\"(memberUid=alice)\" attrs=ALL
";

    fn wanted() -> Wanted {
        Wanted {
            bind_dns: vec![canonical("uid=svc-sync,ou=People,dc=x")],
            networks: vec![Network::parse("10.1.2.0/24").unwrap()],
            filter_values: vec!["alice".into()],
            targets: vec![canonical("ou=groups,dc=x")],
            subtree: true,
            verbs: vec!["DEL".into()],
            errs: vec![49],
            // 02:00:01 to 02:00:04 (+0100): the lines of conns 12 to 14
            since: Some(1_796_605_201_000_000_000),
            until: Some(1_796_605_204_000_000_000),
        }
    }

    #[test]
    fn finds_each_selectors_connections_as_the_tokenizer_reads_them() {
        let s = suspects(LOG.as_bytes(), &wanted());
        // a failed BIND that tried the DN counts (the trace shows it); the TLS identity too
        assert_eq!(s.bind_dn, [11, 12, 16]);
        assert_eq!(s.client_ip, [11, 15]);
        assert_eq!(s.filter_value, [13]); // the internal search is not a connection's
        assert_eq!(s.target, [13, 14]);
        assert_eq!(s.verb, [14]);
        assert_eq!(s.err, [12]);
        assert_eq!(s.time, [12, 13, 14]);
    }

    #[test]
    fn lines_are_found_once_whatever_their_length() {
        let words = [b"dn=\"".to_vec()];
        let two = lines_with(b"a dn=\"x\" dn=\"y\"\nb\nc dn=\"z\"", &words);
        assert_eq!(two, [(0, 16), (18, 26)]);
        // 20 MB in one line, a word every 5 bytes: one line, in linear time (the search
        // for each hit's line start went back to the block's start: about an hour)
        let long = b"dn=\"x".repeat(4 << 20);
        assert_eq!(lines_with(&long, &words), [(0, long.len())]);
    }

    #[test]
    fn a_selector_not_given_finds_nothing_and_a_base_search_only_its_entry() {
        let w = Wanted { targets: vec![canonical("ou=groups,dc=x")], ..Wanted::default() };
        let s = suspects(LOG.as_bytes(), &w);
        assert_eq!(s.target, [13]); // not the entry below it without subtree
        assert!(s.bind_dn.is_empty() && s.client_ip.is_empty() && s.filter_value.is_empty()
                && s.verb.is_empty() && s.err.is_empty() && s.time.is_empty());
        assert_eq!(suspects(b"", &wanted()), Suspects::default());
        assert_eq!(suspects(b"\tjunk\nno newline", &wanted()), Suspects::default());
    }
}
