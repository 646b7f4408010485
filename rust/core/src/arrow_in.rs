//! Reading the columns of Arrow record batches by name, whatever string layout the
//! producer chose (polars exports `Utf8View`; others `Utf8` or `LargeUtf8`).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

/// A column that is missing or of the wrong type: names the column and what was found.
#[derive(Debug, PartialEq, Eq)]
pub struct ColumnError(pub String);

impl std::fmt::Display for ColumnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ColumnError {}

fn column<'a>(batch: &'a RecordBatch, table: &str, name: &str)
              -> Result<&'a dyn Array, ColumnError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| ColumnError(format!("{table}: no column {name:?}")))
}

fn wrong(table: &str, name: &str, want: &str, got: &DataType) -> ColumnError {
    ColumnError(format!("{table}: column {name:?} is {got}, expected {want}"))
}

/// A string column of any Arrow string layout.
pub enum Strs<'a> {
    View(&'a arrow_array::StringViewArray),
    Large(&'a arrow_array::LargeStringArray),
    Small(&'a arrow_array::StringArray),
    Absent,
}

impl<'a> Strs<'a> {
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strs::View(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Small(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Absent => None,
        }
    }
}

pub fn strs<'a>(batch: &'a RecordBatch, table: &str, name: &str) -> Result<Strs<'a>, ColumnError> {
    strs_of(column(batch, table, name)?, table, name)
}

/// `strs` of an array already in hand (`table` and `name` say what it is in errors).
pub fn strs_of<'a>(c: &'a dyn Array, table: &str, name: &str) -> Result<Strs<'a>, ColumnError> {
    Ok(match c.data_type() {
        DataType::Utf8View => Strs::View(c.as_string_view()),
        DataType::LargeUtf8 => Strs::Large(c.as_string::<i64>()),
        DataType::Utf8 => Strs::Small(c.as_string::<i32>()),
        DataType::Null => Strs::Absent,
        other => return Err(wrong(table, name, "a string", other)),
    })
}

/// An integer column (Int64, Int32, or nanosecond timestamps) read in place, as i64
/// values with nulls.
pub enum Ints<'a> {
    I64(&'a arrow_array::Int64Array),
    I32(&'a arrow_array::Int32Array),
    Ns(&'a arrow_array::TimestampNanosecondArray),
    Absent(usize),
}

impl Ints<'_> {
    pub fn get(&self, i: usize) -> Option<i64> {
        match self {
            Ints::I64(a) => a.is_valid(i).then(|| a.value(i)),
            Ints::I32(a) => a.is_valid(i).then(|| i64::from(a.value(i))),
            Ints::Ns(a) => a.is_valid(i).then(|| a.value(i)),
            Ints::Absent(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Ints::I64(a) => a.len(),
            Ints::I32(a) => a.len(),
            Ints::Ns(a) => a.len(),
            Ints::Absent(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<i64>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

pub fn ints<'a>(batch: &'a RecordBatch, table: &str, name: &str) -> Result<Ints<'a>, ColumnError> {
    ints_of(column(batch, table, name)?, table, name)
}

/// `ints` of a column already in hand.
pub fn ints_of<'a>(c: &'a dyn Array, table: &str, name: &str) -> Result<Ints<'a>, ColumnError> {
    Ok(match c.data_type() {
        DataType::Int64 => Ints::I64(c.as_primitive::<Int64Type>()),
        DataType::Int32 => Ints::I32(c.as_primitive::<Int32Type>()),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Ints::Ns(c.as_primitive::<TimestampNanosecondType>())
        }
        DataType::Null => Ints::Absent(c.len()),
        other => return Err(wrong(table, name, "Int64", other)),
    })
}

/// A boolean column read in place.
pub enum Bools<'a> {
    Values(&'a BooleanArray),
    Absent,
}

impl Bools<'_> {
    pub fn get(&self, i: usize) -> Option<bool> {
        match self {
            Bools::Values(a) => a.is_valid(i).then(|| a.value(i)),
            Bools::Absent => None,
        }
    }
}

pub fn bools<'a>(batch: &'a RecordBatch, table: &str, name: &str) -> Result<Bools<'a>, ColumnError> {
    let c = column(batch, table, name)?;
    Ok(match c.data_type() {
        DataType::Boolean => Bools::Values(c.as_boolean()),
        DataType::Null => Bools::Absent,
        other => return Err(wrong(table, name, "Boolean", other)),
    })
}

/// A Float64 column read in place.
pub enum Floats<'a> {
    Values(&'a arrow_array::Float64Array),
    Absent,
}

impl Floats<'_> {
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Floats::Values(a) => a.is_valid(i).then(|| a.value(i)),
            Floats::Absent => None,
        }
    }
}

pub fn floats<'a>(batch: &'a RecordBatch, table: &str, name: &str) -> Result<Floats<'a>, ColumnError> {
    let c = column(batch, table, name)?;
    Ok(match c.data_type() {
        DataType::Float64 => Floats::Values(c.as_primitive::<Float64Type>()),
        DataType::Null => Floats::Absent,
        other => return Err(wrong(table, name, "Float64", other)),
    })
}
