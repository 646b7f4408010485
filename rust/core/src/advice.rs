//! Index advice from the evidence (issue 33): for the searches the server marked
//! unindexed (`notes=A`) or partially unindexed (`notes=U`), which attribute and index
//! type their filters need, with the searches and the etime they cost, and what the
//! server's STAT lines say of that index.
//!
//! A search's filter names its candidates (`filter::index_candidates`: eq, sub, pres,
//! approx, a matching rule; objectClass and negations excluded). Where the server logs
//! its index reads (`nsslapd-statlog-level` bit 1, 2.3.1+), a candidate's reads in that
//! search are counted with the largest candidate list one returned. A key read of an
//! index that is not configured, or of a key over `nsslapd-idlistscanlimit`, returns the
//! whole ID range, "ALLIDS" (`index_read_ext_allids` at back-ldbm/index.c:1047-1056,
//! `idl_allids` at idl_common.c:68-76 at 70dcccaf), whose count is the backend's next
//! entry id: more than any real list. So each server also gets a row with neither
//! attribute nor index type that carries the largest count any read of it returned; the
//! finished table (`pipeline/tables/aggregate.py`) compares each candidate's largest read with
//! it.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Decimal128Array, Int64Array, ListArray, RecordBatch,
                  StringArray};
use arrow_schema::DataType;

use crate::arrow_in::{ints_of, strs_of, ColumnError, Ints, Strs};
use crate::columns::batch;
use crate::filter::index_candidates;

type Map<K, V> = HashMap<K, V, RandomState>;

/// The `index_reads` column of the operations (absent in a batch made before it was).
pub struct Reads<'a> {
    lists: Option<&'a ListArray>,
    attribute: Strs<'a>,
    index: Strs<'a>,
    count: Ints<'a>,
}

impl<'a> Reads<'a> {
    pub fn of(ops: &'a RecordBatch) -> Result<Self, ColumnError> {
        let absent = Reads { lists: None, attribute: Strs::Absent, index: Strs::Absent,
                             count: Ints::Absent(0) };
        let Some(column) = ops.column_by_name("index_reads")
            .filter(|c| *c.data_type() != DataType::Null) else { return Ok(absent) };
        let Some(lists) = column.as_list_opt::<i32>() else {
            return Err(ColumnError(format!(
                "operations: column \"index_reads\" is {}, expected a list of structs",
                column.data_type())));
        };
        let Some(values) = lists.values().as_struct_opt() else {
            return Err(ColumnError("operations: index_reads holds no structs".into()));
        };
        let field = |name: &str| values.column_by_name(name).map(|c| c.as_ref()).ok_or_else(
            || ColumnError(format!("operations: index_reads has no field {name:?}")));
        Ok(Reads {
            attribute: strs_of(field("attribute")?, "index_reads", "attribute")?,
            index: strs_of(field("index")?, "index_reads", "index")?,
            count: ints_of(field("count")?, "index_reads", "count")?,
            lists: Some(lists),
        })
    }

    /// Operation `op`'s reads as (attribute, index type, count); none when no STAT
    /// line was logged for it.
    pub fn of_op(&self, op: usize)
                 -> impl Iterator<Item = (&'a str, &'a str, Option<i64>)> + Clone + '_ {
        let range = match self.lists {
            Some(l) if l.is_valid(op) => {
                let offsets = l.value_offsets();
                offsets[op] as usize..offsets[op + 1] as usize
            }
            _ => 0..0,
        };
        range.filter_map(|r| Some((self.attribute.get(r)?, self.index.get(r)?, self.count.get(r))))
    }
}

#[derive(Default)]
struct Row {
    searches: i64,
    unindexed: i64,
    partially_unindexed: i64,
    etime_ns: i128,
    /// the STAT reads of this attribute and index type in those searches
    stat_reads: i64,
    candidates_max: Option<i64>,
    /// searches that prove the server has this index (`Search::ran_indexed`)
    indexed_searches: i64,
    fingerprints: Vec<u32>,
}

/// One bucket's index advice: rows keyed (server, candidate), a candidate an attribute in
/// lower case and an index type.
#[derive(Default)]
pub struct Advice {
    rows: Map<(u32, u32), Row>,
    names: Vec<(String, String)>,
    ids: Map<(String, String), u32>,
    /// each fingerprint's candidates, parsed from the first filter seen of it: every
    /// search of a fingerprint names the same ones
    candidates: Map<u32, Vec<u32>>,
    /// per server, the largest count any of its reads returned
    largest: Map<u32, i64>,
}

/// One search the advice counts.
pub struct Search<'s> {
    pub server: u32,
    pub fingerprint: u32,
    pub filter: Option<&'s str>,
    pub scope: Option<i64>,
    pub err: Option<i64>,
    pub nentries: Option<i64>,
    pub unindexed: bool,
    pub partially_unindexed: bool,
    pub etime_ns: Option<i128>,
}

impl Search<'_> {
    /// Whether the server read its filter's indexes and found none missing: a one-level
    /// or subtree search that succeeded, returned entries and has neither note A nor U.
    /// A base search reads no index; a search that found nothing may not have read one
    /// (a missing base, or a base without children: the sample's clean `(description=
    /// *...*)` subtree searches under a childless entry); and a search whose filter has
    /// several candidates may have read only one of them (an AND stops at a short list,
    /// back-ldbm/idl_set.c:242 at 70dcccaf), so only a filter with one candidate counts.
    fn ran_indexed(&self) -> bool {
        !(self.unindexed || self.partially_unindexed) && matches!(self.scope, Some(1 | 2))
            && self.err == Some(0) && self.nentries.is_some_and(|n| n > 0)
    }
}

impl Advice {
    /// A search: its reads count towards its server's largest; an unindexed or partially
    /// unindexed one adds to each of its candidates; one that ran indexed, to its one
    /// candidate's `indexed_searches`.
    pub fn add<'r>(&mut self, s: &Search<'_>,
                   reads: impl Iterator<Item = (&'r str, &'r str, Option<i64>)> + Clone) {
        if let Some(most) = reads.clone().filter_map(|(_, _, n)| n).max() {
            let largest = self.largest.entry(s.server).or_insert(most);
            *largest = (*largest).max(most);
        }
        let flagged = s.unindexed || s.partially_unindexed;
        let indexed = s.ran_indexed();
        if !(flagged || indexed) {
            return;
        }
        let Advice { names, ids, candidates, rows, .. } = self;
        let candidates = candidates.entry(s.fingerprint).or_insert_with(|| {
            let mut found = Vec::new();
            for (attr, kinds) in s.filter.and_then(index_candidates).unwrap_or_default() {
                for kind in kinds {
                    let key = (attr.to_ascii_lowercase(), kind);
                    let id = *ids.entry(key.clone()).or_insert_with(|| {
                        names.push(key);
                        (names.len() - 1) as u32
                    });
                    if !found.contains(&id) {  // CN and cn: one candidate
                        found.push(id);
                    }
                }
            }
            found
        });
        if indexed {
            if let [only] = candidates[..] {
                rows.entry((s.server, only)).or_default().indexed_searches += 1;
            }
            return;
        }
        for &id in candidates.iter() {
            let (attr, kind) = &names[id as usize];
            let row = rows.entry((s.server, id)).or_default();
            row.searches += 1;
            row.unindexed += i64::from(s.unindexed);
            row.partially_unindexed += i64::from(s.partially_unindexed);
            row.etime_ns += s.etime_ns.unwrap_or(0);
            for (_, _, count) in reads.clone().filter(|(a, k, _)| {
                    k == kind && a.eq_ignore_ascii_case(attr)}) {
                row.stat_reads += 1;
                row.candidates_max = row.candidates_max.max(count);
            }
            if !row.fingerprints.contains(&s.fingerprint) {
                row.fingerprints.push(s.fingerprint);
            }
        }
    }

    /// The partial `indexes` table: server, attribute, index, searches, unindexed,
    /// partially_unindexed, etime_sum_ns, stat_reads, candidates_max, indexed_searches,
    /// fingerprint_set;
    /// then per server that logged reads, a row with null attribute and index whose
    /// `candidates_max` is the largest count a read of it returned.
    pub fn table<'n>(&self, server: &dyn Fn(u32) -> Option<&'n str>,
                     fingerprint: &dyn Fn(u32) -> Option<&'n str>) -> RecordBatch {
        let mut rows: Vec<_> = self.rows.iter().map(|(&(s, c), row)| {
            let (attr, kind) = &self.names[c as usize];
            ((s, attr.as_str(), kind.as_str()), row)
        }).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut largest: Vec<_> = self.largest.iter().collect();
        largest.sort_unstable();
        let n = rows.len() + largest.len();
        let mut prints = ListBuilder::new(StringBuilder::new());
        for (_, row) in &rows {
            let mut names: Vec<&str> = row.fingerprints.iter().filter_map(|&f| fingerprint(f))
                .collect();
            names.sort_unstable();
            names.iter().for_each(|f| prints.values().append_value(f));
            prints.append(true);
        }
        largest.iter().for_each(|_| prints.append(true));
        let int = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
        let of_rows = |f: &dyn Fn(&Row) -> i64| -> Vec<Option<i64>> {
            rows.iter().map(|(_, r)| Some(f(r))).chain(largest.iter().map(|_| Some(0))).collect()
        };
        batch(vec![
            ("server", Arc::new(rows.iter().map(|((s, _, _), _)| server(*s))
                .chain(largest.iter().map(|(s, _)| server(**s))).collect::<StringArray>())),
            ("attribute", Arc::new(rows.iter().map(|((_, a, _), _)| Some(*a))
                .chain(largest.iter().map(|_| None)).collect::<StringArray>())),
            ("index", Arc::new(rows.iter().map(|((_, _, k), _)| Some(*k))
                .chain(largest.iter().map(|_| None)).collect::<StringArray>())),
            ("searches", int(of_rows(&|r| r.searches))),
            ("unindexed", int(of_rows(&|r| r.unindexed))),
            ("partially_unindexed", int(of_rows(&|r| r.partially_unindexed))),
            ("etime_sum_ns", Arc::new(rows.iter().map(|(_, r)| Some(r.etime_ns))
                .chain(largest.iter().map(|_| Some(0))).collect::<Decimal128Array>()
                .with_precision_and_scale(38, 0).expect("38 digits, scale 0"))),
            ("stat_reads", int(of_rows(&|r| r.stat_reads))),
            ("candidates_max", int(rows.iter().map(|(_, r)| r.candidates_max)
                .chain(largest.iter().map(|(_, n)| Some(**n))).collect())),
            ("indexed_searches", int(of_rows(&|r| r.indexed_searches))),
            ("fingerprint_set", {
                let a = prints.finish();
                debug_assert_eq!(a.len(), n);
                Arc::new(a)
            }),
        ])
    }
}
