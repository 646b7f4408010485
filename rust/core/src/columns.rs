//! Column builders that fill Arrow arrays row by row.
//!
//! Most event columns are null on most rows (a RESULT has no filter, a SRCH no
//! etime), so a column is only touched when a row has a value: `set(row, v)`
//! first pads the rows since its last value with nulls, in one bulk append.
//! `finish(rows)` pads the end. Arrow's builders take `&str` values, so the
//! finished arrays need no second UTF-8 check.
//!
//! A column made `expecting(rows)` makes room for that many rows at its first value,
//! not before: a column set once is padded to every row anyway, so that room is never
//! wasted, and one never set costs nothing (growing by doubling instead cost 3% of
//! the tokenizer's instructions in copies).

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BooleanBuilder, LargeStringBuilder, PrimitiveBuilder};
use arrow_array::types::{ArrowPrimitiveType, Float64Type, Int64Type};
use arrow_array::{ArrayRef, LargeStringArray, RecordBatch};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, Schema};

/// A record batch of named columns of one length (every field nullable).
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), arrays)
        .expect("every column has the batch's row count")
}

/// A string value's bytes assumed for each expected row, at most (the first value's
/// length, capped: one long filter must not reserve for every row).
const ROOM_BYTES: usize = 32;

/// A nullable string column.
pub struct StrCol {
    b: LargeStringBuilder,
    room: usize, // rows to make room for at the first value
}

impl Default for StrCol {
    fn default() -> Self {
        StrCol::expecting(0)
    }
}

impl StrCol {
    /// Room for `rows` rows at the first value.
    pub fn expecting(rows: usize) -> Self {
        StrCol { b: LargeStringBuilder::with_capacity(0, 0), room: rows }
    }

    /// Whether any row was set (a column never set is left out of its table).
    pub fn touched(&self) -> bool {
        self.b.len() > 0
    }

    #[inline]
    pub fn set(&mut self, row: usize, value: &str) {
        if self.room > 0 {
            self.b = LargeStringBuilder::with_capacity(
                self.room, self.room * value.len().clamp(1, ROOM_BYTES));
            self.room = 0;
        }
        self.pad(row);
        self.b.append_value(value);
    }

    #[inline]
    fn pad(&mut self, rows: usize) {
        let len = self.b.len();
        if len < rows {
            self.b.append_nulls(rows - len);
        }
    }

    pub fn finish(mut self, rows: usize) -> ArrayRef {
        self.pad(rows);
        Arc::new(self.b.finish())
    }
}

/// A nullable column of a primitive Arrow type.
pub struct NumCol<T: ArrowPrimitiveType> {
    b: PrimitiveBuilder<T>,
    room: usize, // rows to make room for at the first value
}

pub type I64Col = NumCol<Int64Type>;
pub type F64Col = NumCol<Float64Type>;

impl<T: ArrowPrimitiveType> Default for NumCol<T> {
    fn default() -> Self {
        NumCol::expecting(0)
    }
}

impl<T: ArrowPrimitiveType> NumCol<T> {
    /// Room for `rows` rows at the first value.
    pub fn expecting(rows: usize) -> Self {
        NumCol { b: PrimitiveBuilder::with_capacity(0), room: rows }
    }

    pub fn touched(&self) -> bool {
        self.b.len() > 0
    }

    #[inline]
    pub fn set(&mut self, row: usize, value: T::Native) {
        if self.room > 0 {
            self.b = PrimitiveBuilder::with_capacity(self.room);
            self.room = 0;
        }
        self.pad(row);
        self.b.append_value(value);
    }

    #[inline]
    fn pad(&mut self, rows: usize) {
        let len = self.b.len();
        if len < rows {
            self.b.append_nulls(rows - len);
        }
    }

    pub fn finish(mut self, rows: usize) -> ArrayRef {
        self.pad(rows);
        Arc::new(self.b.finish())
    }
}

/// A nullable boolean column.
pub struct BoolCol {
    b: BooleanBuilder,
    room: usize, // rows to make room for at the first value
}

impl Default for BoolCol {
    fn default() -> Self {
        BoolCol::expecting(0)
    }
}

impl BoolCol {
    /// Room for `rows` rows at the first value.
    pub fn expecting(rows: usize) -> Self {
        BoolCol { b: BooleanBuilder::with_capacity(0), room: rows }
    }

    pub fn touched(&self) -> bool {
        self.b.len() > 0
    }

    pub fn set(&mut self, row: usize, value: bool) {
        if self.room > 0 {
            self.b = BooleanBuilder::with_capacity(self.room);
            self.room = 0;
        }
        let len = self.b.len();
        if len < row {
            self.b.append_nulls(row - len);
        }
        self.b.append_value(value);
    }

    pub fn finish(mut self, rows: usize) -> ArrayRef {
        let len = self.b.len();
        if len < rows {
            self.b.append_nulls(rows - len);
        }
        Arc::new(self.b.finish())
    }
}

/// A string column of a value on every row, each `N` bytes (a time's offset "+hhmm"):
/// the values' bytes back to back, their offsets multiples of `N` made at `finish` (a
/// `StrCol` costs 67 instructions a value, this one a handful).
pub struct FixedStrCol<const N: usize> {
    bytes: Vec<u8>,
}

impl<const N: usize> Default for FixedStrCol<N> {
    fn default() -> Self {
        FixedStrCol::expecting(0)
    }
}

impl<const N: usize> FixedStrCol<N> {
    pub fn expecting(rows: usize) -> Self {
        FixedStrCol { bytes: Vec::with_capacity(rows * N) }
    }

    /// The next row's value (`N` bytes of a `&str`, so whole characters).
    #[inline]
    pub fn push(&mut self, value: &[u8; N]) {
        self.bytes.extend_from_slice(value);
    }

    pub fn finish(self, rows: usize) -> ArrayRef {
        debug_assert_eq!(self.bytes.len(), rows * N);
        let offsets: Vec<i64> = (0..=self.bytes.len() / N).map(|i| (i * N) as i64).collect();
        strings(offsets, self.bytes)
    }
}

/// A string column of a value on every row, each one of a few fixed names (an event's
/// kind): a byte per row, the name's index, made the names' strings at `finish` (as a
/// `StrCol` a value cost 67 instructions; gathered by arrow's `take`, 49).
pub struct NameCol {
    names: &'static [&'static str],
    codes: Vec<u8>,
}

/// Bytes a name may have: each is copied as this many, then the copy cut to its length.
const NAME_BYTES: usize = 16;

impl NameCol {
    pub fn expecting(rows: usize, names: &'static [&'static str]) -> Self {
        assert!(names.len() <= 256 && names.iter().all(|n| n.len() <= NAME_BYTES),
                "a name's index fits a byte, a name {NAME_BYTES} bytes");
        NameCol { names, codes: Vec::with_capacity(rows) }
    }

    /// The next row's value: `names[index]`.
    #[inline]
    pub fn push(&mut self, index: usize) {
        self.codes.push(index as u8);
    }

    pub fn finish(self, rows: usize) -> ArrayRef {
        debug_assert_eq!(self.codes.len(), rows);
        let padded: Vec<[u8; NAME_BYTES]> = self.names.iter().map(|n| {
            let mut p = [0u8; NAME_BYTES];
            p[..n.len()].copy_from_slice(n.as_bytes());
            p
        }).collect();
        let lengths: Vec<usize> = self.names.iter().map(|n| n.len()).collect();
        let mut values = Vec::with_capacity(self.codes.len() * NAME_BYTES);
        let mut offsets = Vec::with_capacity(self.codes.len() + 1);
        offsets.push(0i64);
        for &code in &self.codes {
            // a copy of constant size is a few moves, not a call to memcpy
            let end = values.len() + lengths[code as usize];
            values.extend_from_slice(&padded[code as usize]);
            values.truncate(end);
            offsets.push(end as i64);
        }
        strings(offsets, values)
    }
}

/// A string column of no nulls from its offsets and bytes, both made of whole `&str`
/// values (the safe constructor checks them again).
fn strings(offsets: Vec<i64>, values: Vec<u8>) -> ArrayRef {
    let array = LargeStringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)),
                                          Buffer::from_vec(values), None)
        .expect("whole `&str` values make a valid string array");
    Arc::new(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, LargeStringArray};

    #[test]
    fn sparse_strings_pad_with_nulls() {
        let mut c = StrCol::default();
        c.set(1, "a");
        c.set(3, "");
        let a = c.finish(5);
        let a = a.as_any().downcast_ref::<LargeStringArray>().unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.null_count(), 3);
        assert_eq!((a.value(1), a.value(3)), ("a", ""));
        assert!(a.is_null(0) && a.is_null(2) && a.is_null(4));
    }

    #[test]
    fn names_and_fixed_width_strings_are_their_values() {
        let mut kinds = NameCol::expecting(0, &["BIND", "", "EXTENDED_OP_X"]);
        let mut zones = FixedStrCol::<5>::default();
        for (k, z) in [(2, b"+0000"), (0, b"-0130"), (1, b"+1400"), (2, b"+0000")] {
            kinds.push(k);
            zones.push(z);
        }
        let (kinds, zones) = (kinds.finish(4), zones.finish(4));
        let kinds = kinds.as_any().downcast_ref::<LargeStringArray>().unwrap();
        let zones = zones.as_any().downcast_ref::<LargeStringArray>().unwrap();
        assert_eq!(kinds.iter().flatten().collect::<Vec<_>>(),
                   ["EXTENDED_OP_X", "BIND", "", "EXTENDED_OP_X"]);
        assert_eq!(zones.iter().flatten().collect::<Vec<_>>(), ["+0000", "-0130", "+1400", "+0000"]);
        assert_eq!((kinds.null_count(), zones.null_count()), (0, 0));
    }

    #[test]
    fn sparse_numbers_pad_with_nulls() {
        let mut c = I64Col::default();
        c.set(2, 7);
        let a = c.finish(3);
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((a.null_count(), a.value(2)), (2, 7));
    }
}
