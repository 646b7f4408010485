//! Is the worker pool saturated? One server's (or the fleet's) client operations → per
//! load period: operations started, operations in flight, how long they waited for a
//! worker, and where the server logged it (3.2.1+), the pool's busy workers and queue.
//!
//! An operation is in flight over `[start, RESULT time)`, its start the RESULT time less
//! its etime (`pipeline/engine/saturation.py` writes it beside each operation): one that
//! ends at t and one that starts at t do not overlap, and an etime of 0 is never in
//! flight. The in-flight level is a step function of time; its quantiles are weighted by
//! time: the p99 is the smallest level the server was at or under for 99% of the
//! period's covered time (the part inside `[first, last]`, the window the server's logs
//! cover). Every other figure belongs to the period in which the operation started
//! (clamped to the covered periods). Quantiles of wtime are nearest-rank: the value at
//! rank ⌈p·n⌉.
//!
//! A second is saturated when an operation queued in it found every worker busy and
//! others waiting (`wbusy = wmax` and `wqdepth > 0`, result.c:2357-2362 at 70dcccaf).
//!
//! The sweep streams (`Sweep`): operations are fed in slabs of time, each slab's starts
//! after every start of the slabs before it, in any order inside a slab. What it holds
//! is the periods' figures, the wtimes of the period being filled, the ends of the
//! operations in flight and the distinct wtimes with their counts (for the run's
//! quantiles): not every operation, so a run's memory does not grow with its input (the
//! fleet's sweep of a 2 GB fleet held its 6 M operations at once, half a GB).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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
    /// the saturated seconds (UTC, ascending; None where no second was): who held the
    /// pool then is read from the operations that started in them
    pub saturated_at: Option<Vec<i64>>,
}

#[derive(Default)]
struct Period {
    started: i64,
    /// time (ns) at each in-flight level above 0, in the covered part of the period
    levels: HashMap<i64, i64, RandomState>,
    /// the wtimes of the operations that started in it, while it is being filled
    wtimes: Vec<f64>,
    /// once it is: the wtime p50, p95, p99 and max, and the shares that waited
    wtime: [Option<f64>; 4],
    waited: [Option<f64>; 3],
    workers: Option<i64>,
    busy: Option<i64>,
    queue: Option<i64>,
    pool_logged: bool,
    saturated: Vec<i64>, // seconds, ascending, each once (starts come in order)
}

impl Period {
    /// The period's wtime figures, from its wtimes, which go.
    fn close(&mut self) {
        let mut wtimes = std::mem::take(&mut self.wtimes);
        for (slot, q) in self.wtime.iter_mut().zip([0.5, 0.95, 0.99, 1.0]) {
            *slot = rank(&mut wtimes, q);
        }
        for (slot, (_, threshold)) in self.waited.iter_mut().zip(WAITS) {
            let waited = wtimes.iter().filter(|w| **w >= threshold).count();
            *slot = (!wtimes.is_empty()).then(|| waited as f64 / wtimes.len() as f64);
        }
    }
}

/// One operation of a slab, as the sweep reads it.
struct Flight {
    start: i64,
    stop: i64,
    wtime: Option<f64>,
    busy: Option<i64>,
    max: Option<i64>,
    queue: Option<i64>,
}

/// A sweep over one server's (or the fleet's) operations, fed a slab of time at a time.
pub struct Sweep {
    period_s: i64,
    step: i64,
    first: i64,
    last: i64,
    base: i64,
    periods: Vec<Period>,
    /// the periods before this one are closed (no operation can start in them any more)
    open: usize,
    /// the ends of the operations in flight, the soonest first
    ends: BinaryHeap<Reverse<i64>>,
    /// the in-flight level since `clock`, the time of the last start or end swept
    level: i64,
    clock: i64,
    /// the latest start fed: a slab's starts must not come before it
    latest: i64,
    /// every wtime (by its bits) and how many operations waited it: the run's quantiles
    wtimes: HashMap<u64, i64, RandomState>,
    waited_10ms: i64,
}

impl Sweep {
    /// A sweep of the periods of `period_s` seconds from the one holding `first` to the
    /// one holding `last` (ns).
    pub fn new(period_s: i64, first: i64, last: i64) -> Sweep {
        let step = period_s.max(1) * NS;
        let (first, last) = (first.min(last), first.max(last));
        let base = first - first.rem_euclid(step);
        let count = ((last - base) / step + 1) as usize;
        Sweep {
            period_s, step, first, last, base,
            periods: (0..count).map(|_| Period::default()).collect(),
            open: 0, ends: BinaryHeap::new(), level: 0, clock: i64::MIN, latest: i64::MIN,
            wtimes: HashMap::default(), waited_10ms: 0,
        }
    }

    fn period_of(&self, t: i64) -> usize {
        ((t.clamp(self.first, self.last) - self.base) / self.step) as usize
    }

    /// A slab of operations (columns `start` and `result_ts`, and where present `wtime`,
    /// `wbusy`, `wmax`, `wqdepth`; rows without a start or a `result_ts` are left out),
    /// in any order; its starts must not come before those of the slabs fed before.
    pub fn feed(&mut self, ops: &RecordBatch) -> Result<(), ColumnError> {
        let start = ints(ops, "flights", "start")?;
        let stop = ints(ops, "flights", "result_ts")?;
        let optional_f = |name| if ops.column_by_name(name).is_some() { floats(ops, "flights", name) }
                                else { Ok(Floats::Absent) };
        let optional_i = |name| if ops.column_by_name(name).is_some() { ints(ops, "flights", name) }
                                else { Ok(Ints::Absent(ops.num_rows())) };
        let (wtime, wbusy, wmax, wqdepth) =
            (optional_f("wtime")?, optional_i("wbusy")?, optional_i("wmax")?, optional_i("wqdepth")?);
        // the rows by start (16 bytes each, the other columns read in that order)
        let mut order: Vec<(i64, usize)> = Vec::with_capacity(ops.num_rows());
        order.extend((0..ops.num_rows())
            .filter(|row| stop.get(*row).is_some())
            .filter_map(|row| Some((start.get(row)?, row))));
        order.sort_unstable();
        if let Some((first, _)) = order.first().filter(|(s, _)| *s < self.latest) {
            return Err(ColumnError(format!(
                "flights: a slab starts at {first} ns, before the slab fed before it ({} ns)",
                self.latest)));
        }
        for (start, row) in order {
            self.take(&Flight {
                start, stop: stop.get(row).unwrap_or(start), wtime: wtime.get(row),
                busy: wbusy.get(row), max: wmax.get(row), queue: wqdepth.get(row),
            });
        }
        Ok(())
    }

    fn take(&mut self, f: &Flight) {
        // the ends up to this start first: an end at t comes before a start at t
        while let Some(&Reverse(end)) = self.ends.peek().filter(|Reverse(e)| *e <= f.start) {
            self.ends.pop();
            self.change(end, -1);
        }
        if f.stop > f.start {
            self.change(f.start, 1);
            self.ends.push(Reverse(f.stop));
        }
        self.latest = f.start;
        let at = self.period_of(f.start);
        while self.open < at {
            self.periods[self.open].close();
            self.open += 1;
        }
        let p = &mut self.periods[at];
        p.started += 1;
        if let Some(w) = f.wtime {
            p.wtimes.push(w);
            *self.wtimes.entry(w.to_bits()).or_default() += 1;
            self.waited_10ms += i64::from(w >= WAITS[1].1);
        }
        if f.busy.is_some() || f.queue.is_some() {
            p.pool_logged = true;
            p.busy = p.busy.max(f.busy);
            p.queue = p.queue.max(f.queue);
            p.workers = p.workers.max(f.max);
            if f.busy.is_some() && f.busy == f.max && f.queue.is_some_and(|q| q > 0) {
                let second = f.start.div_euclid(NS);
                if p.saturated.last() != Some(&second) {
                    p.saturated.push(second);
                }
            }
        }
    }

    /// The level changes by `by` at `t`: the time since the last change, at the level
    /// it had, goes to the periods it crosses (inside `[first, last]`).
    fn change(&mut self, t: i64, by: i64) {
        let (from, to) = (self.clock.max(self.first), t.min(self.last));
        if self.level > 0 && to > from {
            let mut at = from;
            while at < to {
                let p = (at - self.base) / self.step;
                let until = (self.base + (p + 1) * self.step).min(to);
                *self.periods[p as usize].levels.entry(self.level).or_default() += until - at;
                at = until;
            }
        }
        self.level += by;
        self.clock = t;
    }

    /// One row per period, and the run's figures.
    pub fn finish(mut self) -> (RecordBatch, Overall) {
        while let Some(Reverse(end)) = self.ends.pop() {
            self.change(end, -1);
        }
        let mut overall = Overall::default();
        let mut any_pool = false;
        let mut saturated_at: Vec<i64> = Vec::new();
        let mut b = Columns::new(self.periods.len());
        for (i, mut p) in self.periods.into_iter().enumerate() {
            if i >= self.open {
                p.close();
            }
            let start = self.base + i as i64 * self.step;
            let covered = (start + self.step).min(self.last) - start.max(self.first);
            b.start.append_value(start);
            b.operations.append_value(p.started);
            let (p50, p99, max) = levels(&p.levels, covered);
            b.in_flight_p50.append_option(p50);
            b.in_flight_p99.append_option(p99);
            b.in_flight_max.append_option(max);
            overall.peak_in_flight = overall.peak_in_flight.max(max);
            for (column, value) in b.wtime.iter_mut().zip(p.wtime) {
                column.append_option(value);
            }
            for (column, value) in b.waited.iter_mut().zip(p.waited) {
                column.append_option(value);
            }
            b.workers.append_option(p.workers);
            b.busy_max.append_option(p.busy);
            b.queue_max.append_option(p.queue);
            b.saturated_seconds.append_option(p.pool_logged.then_some(p.saturated.len() as i64));
            any_pool |= p.pool_logged;
            saturated_at.extend_from_slice(&p.saturated);
            overall.workers = overall.workers.max(p.workers);
            overall.operations += p.started;
        }
        let mut wtimes: Vec<(f64, i64)> =
            self.wtimes.iter().map(|(bits, n)| (f64::from_bits(*bits), *n)).collect();
        wtimes.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let waits: i64 = wtimes.iter().map(|(_, n)| n).sum();
        overall.wtime_p95 = counted_rank(&wtimes, waits, 0.95);
        overall.wtime_p99 = counted_rank(&wtimes, waits, 0.99);
        overall.waited_10ms = self.waited_10ms;
        overall.waited_10ms_share = (waits > 0).then(|| self.waited_10ms as f64 / waits as f64);
        overall.saturated_seconds = any_pool.then_some(saturated_at.len() as i64);
        overall.saturated_at = (!saturated_at.is_empty()).then_some(saturated_at);
        (b.finish(self.period_s), overall)
    }
}

/// `ops` in one slab: `Sweep::new`, `feed`, `finish`.
pub fn saturation(ops: &RecordBatch, period_s: i64, first: i64, last: i64)
                  -> Result<(RecordBatch, Overall), ColumnError> {
    let mut sweep = Sweep::new(period_s, first, last);
    sweep.feed(ops)?;
    Ok(sweep.finish())
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

/// Nearest rank over distinct values and their counts (ascending): the value at rank
/// ⌈q·n⌉ of the `n` values they stand for.
fn counted_rank(values: &[(f64, i64)], n: i64, q: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let r = ((q * n as f64).ceil() as i64).clamp(1, n);
    let mut seen = 0;
    values.iter().find(|(_, k)| {
        seen += k;
        seen >= r
    }).map(|(v, _)| *v)
}

struct Columns {
    start: TimestampNanosecondBuilder,
    operations: Int64Builder,
    in_flight_p50: Int64Builder,
    in_flight_p99: Int64Builder,
    in_flight_max: Int64Builder,
    /// p50, p95, p99, max
    wtime: [Float64Builder; 4],
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
            wtime: [f(), f(), f(), f()],
            waited: [f(), f(), f()], workers: i(), busy_max: i(), queue_max: i(),
            saturated_seconds: i(),
        }
    }

    fn finish(mut self, period_s: i64) -> RecordBatch {
        let operations = self.operations.finish();
        let seconds: ArrayRef =
            Arc::new(arrow_array::Int64Array::from(vec![period_s; operations.len()]));
        let [w1, w10, w100] = self.waited.each_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        let [p50, p95, p99, max] = self.wtime.each_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        batch(vec![
            ("start", Arc::new(self.start.finish())),
            ("seconds", seconds),
            ("operations", Arc::new(operations)),
            ("in_flight_p50", Arc::new(self.in_flight_p50.finish())),
            ("in_flight_p99", Arc::new(self.in_flight_p99.finish())),
            ("in_flight_max", Arc::new(self.in_flight_max.finish())),
            ("wtime_p50", p50),
            ("wtime_p95", p95),
            ("wtime_p99", p99),
            ("wtime_max", max),
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

    /// Operations of (RESULT time, etime in seconds).
    fn ops(rows: &[(i64, f64)]) -> RecordBatch {
        batch(vec![
            ("start", Arc::new(rows.iter().map(|r| Some(r.0 - (r.1 * 1e9).round() as i64))
                .collect::<Int64Array>())),
            ("result_ts", Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int64Array>())),
        ])
    }

    /// An operation: (start, stop, wtime, (wbusy, wmax, wqdepth)).
    type Op = (i64, i64, f64, (i64, i64, i64));

    fn pooled(rows: &[Op]) -> RecordBatch {
        batch(vec![
            ("start", Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int64Array>())),
            ("result_ts", Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Int64Array>())),
            ("wtime", Arc::new(rows.iter().map(|r| Some(r.2)).collect::<Float64Array>())),
            ("wbusy", Arc::new(rows.iter().map(|r| Some(r.3 .0)).collect::<Int64Array>())),
            ("wmax", Arc::new(rows.iter().map(|r| Some(r.3 .1)).collect::<Int64Array>())),
            ("wqdepth", Arc::new(rows.iter().map(|r| Some(r.3 .2)).collect::<Int64Array>())),
        ])
    }

    /// Pseudo-random operations over 20 s, some pooled and saturated (a fixed LCG).
    fn many(n: usize) -> Vec<Op> {
        let mut x: u64 = 42;
        let mut next = |m: u64| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % m
        };
        (0..n).map(|_| {
            let start = next(20_000) as i64 * 1_000_000 + next(3) as i64;
            let stop = start + [0, 1, 500_000, 3 * NS][next(4) as usize];
            let wtime = [0.0, 0.0001, 0.01, 0.2, 0.0001][next(5) as usize];
            (start, stop, wtime, (next(5) as i64, 4, next(3) as i64))
        }).collect()
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

    #[test]
    fn slabs_fed_in_turn_give_what_one_slab_gives() {
        let rows = many(5_000);
        let (whole, all) = saturation(&pooled(&rows), 1, 0, 20 * NS).unwrap();
        let mut sorted = rows.clone();
        sorted.sort_by_key(|r| r.0);
        let mut sweep = Sweep::new(1, 0, 20 * NS);
        for slab in sorted.chunks(777) {  // (slabs that cut periods and equal starts)
            sweep.feed(&pooled(slab)).unwrap();
        }
        let (slabbed, overall) = sweep.finish();
        assert_eq!(slabbed, whole);
        assert_eq!(overall, all);
        assert!(all.saturated_at.as_ref().is_some_and(|s| s.len() > 3));
        // the run's wtime quantiles are nearest-rank over every operation's
        let mut wtimes: Vec<f64> = rows.iter().map(|r| r.2).collect();
        assert_eq!(all.wtime_p95, rank(&mut wtimes, 0.95));
        assert_eq!(all.wtime_p99, rank(&mut wtimes, 0.99));
        // the saturated seconds: those in which a pooled operation found no worker free
        let mut seconds: Vec<i64> = rows.iter().filter(|r| r.3 .0 == r.3 .1 && r.3 .2 > 0)
            .map(|r| r.0.div_euclid(NS)).collect();
        seconds.sort_unstable();
        seconds.dedup();
        assert_eq!(all.saturated_at, Some(seconds));
    }

    #[test]
    fn a_slab_that_starts_before_the_last_is_an_error() {
        let mut sweep = Sweep::new(1, 0, 10 * NS);
        sweep.feed(&ops(&[(5 * NS, 1.0)])).unwrap();
        let e = sweep.feed(&ops(&[(4 * NS, 1.0)])).unwrap_err();
        assert!(e.0.contains("before the slab fed before it"), "{e}");
    }

    #[test]
    fn counted_ranks_are_the_ranks_of_the_values_they_count() {
        let values: Vec<f64> = many(300).iter().map(|r| r.2 + (r.0 % 7) as f64).collect();
        let mut counted: HashMap<u64, i64> = HashMap::new();
        for v in &values {
            *counted.entry(v.to_bits()).or_default() += 1;
        }
        let mut counted: Vec<(f64, i64)> =
            counted.iter().map(|(b, n)| (f64::from_bits(*b), *n)).collect();
        counted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        for q in (1..=100).map(|k| f64::from(k) / 100.0) {
            assert_eq!(counted_rank(&counted, values.len() as i64, q),
                       rank(&mut values.clone(), q), "q = {q}");
        }
        assert_eq!(counted_rank(&[], 0, 0.5), None);
    }
}

