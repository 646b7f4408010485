//! Is the worker pool saturated? One server's (or the fleet's) client operations → per
//! load period: operations started, operations in flight, how long they waited for a
//! worker, and where the server logged it (3.2.1+), the pool's busy workers and queue.
//!
//! An operation is in flight over `[RESULT time − etime, RESULT time)`: one that ends at t
//! and one that starts at t do not overlap, and an etime of 0 is never in flight. The
//! in-flight level is a step function of time; its quantiles are weighted by time: the
//! p99 is the smallest level the server was at or under for 99% of the period's covered
//! time (the part inside `[first, last]`, the window the server's logs cover). Every
//! other figure belongs to the period in which the operation started (clamped to the
//! covered periods). Quantiles of wtime are nearest-rank: the value at rank ⌈p·n⌉.
//!
//! A second is saturated when an operation queued in it found every worker busy and
//! others waiting (`wbusy = wmax` and `wqdepth > 0`, result.c:2357-2362 at 70dcccaf).

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use arrow_array::builder::{Float64Builder, Int64Builder, TimestampNanosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};

use crate::arrow_in::{floats, ints, ColumnError, Floats, Ints};
use crate::columns::batch;

const NS: i64 = 1_000_000_000;
/// The waits whose shares are given, in seconds (`waited_1ms`, ...).
pub const WAITS: [(&str, f64); 3] = [("waited_1ms", 0.001), ("waited_10ms", 0.01),
                                     ("waited_100ms", 0.1)];

/// The whole run's figures (summary.json's `saturation`).
#[derive(Debug, Default, PartialEq)]
pub struct Overall {
    pub operations: i64,
    pub peak_in_flight: Option<i64>,
    pub wtime_p95: Option<f64>,
    pub wtime_p99: Option<f64>,
    pub waited_10ms: i64,
    /// of the operations with a wtime
    pub waited_10ms_share: Option<f64>,
    /// None where no operation logged the pool
    pub saturated_seconds: Option<i64>,
    pub workers: Option<i64>,
    /// per row of the input: whether the operation started in a saturated second (None
    /// where no second was: who held the pool then)
    pub in_saturated: Option<Vec<bool>>,
}

#[derive(Default)]
struct Period {
    started: i64,
    /// time (ns) at each in-flight level above 0, in the covered part of the period
    levels: HashMap<i64, i64, RandomState>,
    wtimes: Vec<f64>,
    workers: Option<i64>,
    busy: Option<i64>,
    queue: Option<i64>,
    pool_logged: bool,
    saturated: Vec<i64>, // seconds, unsorted, repeated
}

/// `ops` (columns `result_ts` and `etime`, and where present `wtime`, `wbusy`, `wmax`,
/// `wqdepth`; rows without `result_ts` or `etime` are left out) → one row per period of
/// `period_s` seconds from the one holding `first` to the one holding `last` (ns), and
/// the run's figures.
pub fn saturation(ops: &RecordBatch, period_s: i64, first: i64, last: i64)
                  -> Result<(RecordBatch, Overall), ColumnError> {
    let step = period_s.max(1) * NS;
    let end = ints(ops, "flights", "result_ts")?;
    let etime = floats(ops, "flights", "etime")?;
    let optional_f = |name| if ops.column_by_name(name).is_some() { floats(ops, "flights", name) }
                            else { Ok(Floats::Absent) };
    let optional_i = |name| if ops.column_by_name(name).is_some() { ints(ops, "flights", name) }
                            else { Ok(Ints::Absent(ops.num_rows())) };
    let (wtime, wbusy, wmax, wqdepth) =
        (optional_f("wtime")?, optional_i("wbusy")?, optional_i("wmax")?, optional_i("wqdepth")?);
    let (first, last) = (first.min(last), first.max(last));
    let base = first - first.rem_euclid(step);
    let count = ((last - base) / step + 1) as usize;
    let mut periods: Vec<Period> = (0..count).map(|_| Period::default()).collect();
    let period_of = |t: i64| ((t.clamp(first, last) - base) / step) as usize;
    // an operation's start and end (ns), where it has both
    let span = |row: usize| -> Option<(i64, i64)> {
        let (stop, e) = (end.get(row)?, etime.get(row)?);
        Some((stop - (e * 1e9).round() as i64, stop))
    };

    // each start and end as one integer, 2t + 1 for a start: sorted, an end at t comes
    // before a start at t (they do not overlap), and a sort of integers is the fastest
    let mut changes: Vec<i64> = Vec::with_capacity(2 * ops.num_rows());
    for row in 0..ops.num_rows() {
        let Some((start, stop)) = span(row) else { continue };
        if stop > start {
            changes.push(start.saturating_mul(2) + 1);
            changes.push(stop.saturating_mul(2));
        }
        let p = &mut periods[period_of(start)];
        p.started += 1;
        if let Some(w) = wtime.get(row) {
            p.wtimes.push(w);
        }
        let (busy, max, queue) = (wbusy.get(row), wmax.get(row), wqdepth.get(row));
        if busy.is_some() || queue.is_some() {
            p.pool_logged = true;
            p.busy = p.busy.max(busy);
            p.queue = p.queue.max(queue);
            p.workers = p.workers.max(max);
            if busy.is_some() && busy == max && queue.is_some_and(|q| q > 0) {
                p.saturated.push(start.div_euclid(NS));
            }
        }
    }
    changes.sort_unstable();
    let mut level = 0i64;
    for (i, change) in changes.iter().enumerate() {
        level += if change & 1 == 1 { 1 } else { -1 };
        let Some(next) = changes.get(i + 1) else { break };
        let (from, to) = ((change >> 1).max(first), (next >> 1).min(last));
        if level <= 0 || to <= from {
            continue;
        }
        // the segment [from, to) at `level`, over the periods it crosses
        let mut at = from;
        while at < to {
            let p = (at - base) / step;
            let until = (base + (p + 1) * step).min(to);
            *periods[p as usize].levels.entry(level).or_default() += until - at;
            at = until;
        }
    }

    let mut all_wtimes: Vec<f64> = Vec::new();
    let mut overall = Overall::default();
    let mut any_pool = false;
    let mut saturated_total = 0i64;
    let mut saturated_at: Vec<i64> = Vec::new();
    let mut b = Columns::new(count);
    for (i, mut p) in periods.into_iter().enumerate() {
        let start = base + i as i64 * step;
        let covered = (start + step).min(last) - start.max(first);
        b.start.append_value(start);
        b.operations.append_value(p.started);
        let (p50, p99, max) = levels(&p.levels, covered);
        b.in_flight_p50.append_option(p50);
        b.in_flight_p99.append_option(p99);
        b.in_flight_max.append_option(max);
        overall.peak_in_flight = overall.peak_in_flight.max(max);
        for (column, q) in [(&mut b.wtime_p50, 0.5), (&mut b.wtime_p95, 0.95),
                            (&mut b.wtime_p99, 0.99), (&mut b.wtime_max, 1.0)] {
            column.append_option(rank(&mut p.wtimes, q));
        }
        for (k, (_, threshold)) in WAITS.iter().enumerate() {
            let waited = p.wtimes.iter().filter(|w| *w >= threshold).count();
            b.waited[k].append_option((!p.wtimes.is_empty())
                .then(|| waited as f64 / p.wtimes.len() as f64));
        }
        b.workers.append_option(p.workers);
        b.busy_max.append_option(p.busy);
        b.queue_max.append_option(p.queue);
        p.saturated.sort_unstable();
        p.saturated.dedup();
        b.saturated_seconds.append_option(p.pool_logged.then_some(p.saturated.len() as i64));
        any_pool |= p.pool_logged;
        saturated_total += p.saturated.len() as i64;
        saturated_at.extend_from_slice(&p.saturated);
        overall.workers = overall.workers.max(p.workers);
        overall.operations += p.started;
        all_wtimes.extend(p.wtimes);
    }
    overall.wtime_p95 = rank(&mut all_wtimes, 0.95);
    overall.wtime_p99 = rank(&mut all_wtimes, 0.99);
    overall.waited_10ms = all_wtimes.iter().filter(|w| **w >= WAITS[1].1).count() as i64;
    overall.waited_10ms_share = (!all_wtimes.is_empty())
        .then(|| overall.waited_10ms as f64 / all_wtimes.len() as f64);
    overall.saturated_seconds = any_pool.then_some(saturated_total);
    if !saturated_at.is_empty() {
        // (a second pass, only for a server that saturated: no per-operation state is
        // kept through the sweep)
        saturated_at.sort_unstable();
        overall.in_saturated = Some((0..ops.num_rows())
            .map(|row| span(row).is_some_and(|(start, _)| {
                saturated_at.binary_search(&start.div_euclid(NS)).is_ok()
            }))
            .collect());
    }
    Ok((b.finish(period_s), overall))
}

/// The time-weighted p50, p99 and max of the in-flight level over `covered` ns, from the
/// time spent at each level above 0 (the rest of the covered time is at 0).
fn levels(at: &HashMap<i64, i64, RandomState>, covered: i64)
          -> (Option<i64>, Option<i64>, Option<i64>) {
    if covered <= 0 {
        return (None, None, None);
    }
    let mut at: Vec<(i64, i64)> = at.iter().map(|(l, t)| (*l, *t)).collect();
    at.sort_unstable();
    let busy: i64 = at.iter().map(|(_, t)| t).sum();
    let quantile = |num: i128, den: i128| -> i64 {
        let mut cum = i128::from(covered - busy); // at level 0
        if cum * den >= num * i128::from(covered) {
            return 0;
        }
        for (level, t) in &at {
            cum += i128::from(*t);
            if cum * den >= num * i128::from(covered) {
                return *level;
            }
        }
        at.last().map_or(0, |(l, _)| *l)
    };
    let max = at.last().map_or(0, |(l, _)| *l);
    (Some(quantile(1, 2)), Some(quantile(99, 100)), Some(max))
}

/// Nearest rank: the value at rank ⌈q·n⌉ of the values (reordered: a selection, O(n),
/// not a sort).
fn rank(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let r = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(*values.select_nth_unstable_by(r - 1, f64::total_cmp).1)
}

struct Columns {
    start: TimestampNanosecondBuilder,
    operations: Int64Builder,
    in_flight_p50: Int64Builder,
    in_flight_p99: Int64Builder,
    in_flight_max: Int64Builder,
    wtime_p50: Float64Builder,
    wtime_p95: Float64Builder,
    wtime_p99: Float64Builder,
    wtime_max: Float64Builder,
    waited: [Float64Builder; 3],
    workers: Int64Builder,
    busy_max: Int64Builder,
    queue_max: Int64Builder,
    saturated_seconds: Int64Builder,
}

impl Columns {
    fn new(n: usize) -> Self {
        let i = || Int64Builder::with_capacity(n);
        let f = || Float64Builder::with_capacity(n);
        Columns {
            start: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            operations: i(), in_flight_p50: i(), in_flight_p99: i(), in_flight_max: i(),
            wtime_p50: f(), wtime_p95: f(), wtime_p99: f(), wtime_max: f(),
            waited: [f(), f(), f()], workers: i(), busy_max: i(), queue_max: i(),
            saturated_seconds: i(),
        }
    }

    fn finish(mut self, period_s: i64) -> RecordBatch {
        let operations = self.operations.finish();
        let seconds: ArrayRef =
            Arc::new(arrow_array::Int64Array::from(vec![period_s; operations.len()]));
        let [w1, w10, w100] = self.waited.each_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        batch(vec![
            ("start", Arc::new(self.start.finish())),
            ("seconds", seconds),
            ("operations", Arc::new(operations)),
            ("in_flight_p50", Arc::new(self.in_flight_p50.finish())),
            ("in_flight_p99", Arc::new(self.in_flight_p99.finish())),
            ("in_flight_max", Arc::new(self.in_flight_max.finish())),
            ("wtime_p50", Arc::new(self.wtime_p50.finish())),
            ("wtime_p95", Arc::new(self.wtime_p95.finish())),
            ("wtime_p99", Arc::new(self.wtime_p99.finish())),
            ("wtime_max", Arc::new(self.wtime_max.finish())),
            (WAITS[0].0, w1),
            (WAITS[1].0, w10),
            (WAITS[2].0, w100),
            ("workers", Arc::new(self.workers.finish())),
            ("busy_max", Arc::new(self.busy_max.finish())),
            ("queue_max", Arc::new(self.queue_max.finish())),
            ("saturated_seconds", Arc::new(self.saturated_seconds.finish())),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Float64Array, Int64Array};

    fn ops(rows: &[(i64, f64)]) -> RecordBatch {
        batch(vec![
            ("result_ts", Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int64Array>())),
            ("etime", Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Float64Array>())),
        ])
    }

    fn column(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        b.column_by_name(name).unwrap().as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn touching_operations_do_not_overlap_and_levels_weigh_by_time() {
        // in seconds 0..10: [1,3) and [3,5) touch (level 1), [2,2.5) overlaps the first
        let (b, all) = saturation(&ops(&[(3 * NS, 2.0), (5 * NS, 2.0), (5 * NS / 2, 0.5)]),
                                  10, 0, 10 * NS).unwrap();
        // (the period that begins at the last instant covers no time: no levels)
        assert_eq!(column(&b, "in_flight_max"), [Some(2), None]);
        // at 0 for 6 s of 10, so the p50 is 0; p99 is 2 (2 only for 5% of the time)
        assert_eq!(column(&b, "in_flight_p50"), [Some(0), None]);
        assert_eq!(column(&b, "in_flight_p99"), [Some(2), None]);
        assert_eq!(column(&b, "operations"), [Some(3), Some(0)]);
        assert_eq!(all.peak_in_flight, Some(2));
        assert_eq!(all.saturated_seconds, None);
    }
}
