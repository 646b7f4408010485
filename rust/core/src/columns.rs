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
use arrow_array::{ArrayRef, RecordBatch};
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
    fn sparse_numbers_pad_with_nulls() {
        let mut c = I64Col::default();
        c.set(2, 7);
        let a = c.finish(3);
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((a.null_count(), a.value(2)), (2, 7));
    }
}
