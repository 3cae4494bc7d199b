//! Faithful conversion of PostgreSQL result values to JSON.
//!
//! pgward reads results in the binary format (what `tokio_postgres` asks for) and turns each
//! cell into a [`serde_json::Value`]. The rule is: map a value only when the JSON says exactly
//! what Postgres meant, and otherwise *report* the column (never guess), naming a cast that
//! always works (`::text`). Every decoder here reads the raw big-endian bytes itself, so the
//! mapping does not depend on which Rust types happen to implement `FromSql`.
//!
//! | PostgreSQL type | JSON |
//! |---|---|
//! | `bool` | boolean |
//! | `int2`, `int4`, `oid` | number |
//! | `int8` | number when `|v| <= 2^53 - 1`, otherwise a string of the exact digits, so that JavaScript clients (whose numbers are doubles) never round it silently |
//! | `float4`, `float8` | number (`float4` as its shortest decimal form, like Postgres prints it); `NaN`, `Infinity`, `-Infinity` as those strings |
//! | `numeric` | string with exactly the text Postgres prints (`"1.50"`, `"NaN"`, `"-Infinity"`) |
//! | `text`, `varchar`, `bpchar`, `name`, `unknown`, enum types | string |
//! | `"char"` | string, as Postgres prints it (a high-bit byte becomes `\ooo`) |
//! | `uuid` | lowercase hyphenated string |
//! | `date` | `"YYYY-MM-DD"` |
//! | `time` | `"HH:MM:SS[.ffffff]"` |
//! | `timetz` | `"HH:MM:SS[.ffffff]+HH:MM[:SS]"` |
//! | `timestamp` | `"YYYY-MM-DDTHH:MM:SS[.ffffff]"` (no offset) |
//! | `timestamptz` | `"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"` (UTC) |
//! | `interval` | ISO 8601 duration, exactly Postgres' `intervalstyle = iso_8601` text (`"P1Y2M3DT4H5M6.5S"`, `"PT0S"`) |
//! | `json`, `jsonb` | the parsed document |
//! | `bytea` | `"\x"` followed by lowercase hex (Postgres' hex output) |
//! | `inet`, `cidr` | the text Postgres prints (`"10.0.0.1"`, `"10.0.0.0/8"`, `"::ffff:1.2.3.4"`) |
//! | arrays of any of the above | nested arrays, `NULL` elements as `null` |
//! | domains | as their base type |
//!
//! Details that keep the mapping faithful:
//! - Fractional seconds print with trailing zeros removed and no fraction at all when it is
//!   zero, as Postgres prints them (`"03:04:05.5"`, `"03:04:05"`).
//! - `date`/`timestamp` infinities are the strings `"infinity"` and `"-infinity"`. Years use
//!   ISO 8601 astronomical numbering: 1 BC is `0000`, 44 BC is `-0043`, years after 9999 carry a
//!   `+`.
//! - A `json`/`jsonb` number that would lose digits as a JSON double (serde_json parses
//!   non-integers and integers beyond 64 bits as `f64`) makes the cell
//!   [`ValueError::Unrepresentable`], as does an array whose indexes do not start at 1 (a JSON
//!   array cannot carry the bounds).
//! - Inside `json`/`jsonb` documents, integers up to 64 bits stay JSON numbers with their exact
//!   digits (the `int8`-as-string rule applies to columns, not to document contents). Object
//!   keys come back sorted and, for `json` with a repeated key, the last value wins (jsonb
//!   already behaves that way).
//! - Everything else (`money`, `xml`, ranges, composites, geometric types, `tsvector`, `bit`,
//!   `macaddr`, extension types such as `citext`, ...) is [`ValueError::Unsupported`]; the caller
//!   can check [`is_supported`] before streaming.

use std::error::Error as StdError;
use std::fmt::Write as _;

use serde_json::{Number, Value};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Kind, Type};

/// Largest integer a JSON (IEEE double) number holds exactly: 2^53 - 1.
const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Days from 1970-01-01 to 2000-01-01, the Postgres epoch.
const PG_EPOCH_UNIX_DAYS: i64 = 10_957;
const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;

/// Postgres' `MAXDIM`: no array has more dimensions.
const MAX_ARRAY_DIMS: i32 = 6;

/// Why a cell could not become JSON.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The column's type has no faithful JSON mapping here.
    #[error(
        "column `{column}` has type `{type_name}`, which pgward cannot return; cast it, e.g. `{}::text`",
        sql_ident(.column)
    )]
    Unsupported { column: String, type_name: String },
    /// The type is supported, but this value would lose information as JSON.
    #[error(
        "column `{column}` of type `{type_name}` holds {what}, which JSON cannot carry faithfully; cast it, e.g. `{}::text`",
        sql_ident(.column)
    )]
    Unrepresentable {
        column: String,
        type_name: String,
        what: &'static str,
    },
    /// The bytes Postgres sent do not match the type's binary format.
    #[error("could not decode column `{column}` of type `{type_name}`")]
    Decode { column: String, type_name: String },
    /// The caller asked for a column the row does not have.
    #[error("the row has no column at index {index}")]
    NoSuchColumn { index: usize },
}

/// Converts one cell. `Ok(Value::Null)` for SQL NULL.
///
/// An unsupported column type is an error even when the value is NULL, so a column either
/// always works or never does.
pub fn cell_to_json(row: &Row, idx: usize) -> Result<Value, ValueError> {
    let Some(column) = row.columns().get(idx) else {
        return Err(ValueError::NoSuchColumn { index: idx });
    };
    decode_cell(row, idx, codec_for(column.type_()).as_ref())
}

/// The decoders of a result's columns, resolved once from their types: what
/// [`cell_to_json`] does for each cell, without looking the type up again.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    codecs: Vec<Option<Codec>>,
}

impl RowDecoder {
    pub fn new(columns: &[tokio_postgres::Column]) -> Self {
        Self {
            codecs: columns.iter().map(|c| codec_for(c.type_())).collect(),
        }
    }

    /// Converts cell `idx` of `row`, a row of the result the decoder was made for; the same
    /// value and the same errors as [`cell_to_json`].
    pub fn cell(&self, row: &Row, idx: usize) -> Result<Value, ValueError> {
        let Some(codec) = self.codecs.get(idx) else {
            return Err(ValueError::NoSuchColumn { index: idx });
        };
        decode_cell(row, idx, codec.as_ref())
    }
}

fn decode_cell(row: &Row, idx: usize, codec: Option<&Codec>) -> Result<Value, ValueError> {
    let Some(column) = row.columns().get(idx) else {
        return Err(ValueError::NoSuchColumn { index: idx });
    };
    let ty = column.type_();
    let codec = codec.ok_or_else(|| ValueError::Unsupported {
        column: column.name().to_owned(),
        type_name: ty.name().to_owned(),
    })?;
    let cell = row
        .try_get::<_, Option<RawCell<'_>>>(idx)
        .map_err(|_| ValueError::Decode {
            column: column.name().to_owned(),
            type_name: ty.name().to_owned(),
        })?;
    match cell {
        None => Ok(Value::Null),
        Some(RawCell(raw)) => decode(codec, raw).map_err(|fault| match fault {
            Fault::Malformed => ValueError::Decode {
                column: column.name().to_owned(),
                type_name: ty.name().to_owned(),
            },
            Fault::Unrepresentable(what) => ValueError::Unrepresentable {
                column: column.name().to_owned(),
                type_name: ty.name().to_owned(),
                what,
            },
        }),
    }
}

/// Whether a column type is supported (so a caller can refuse before streaming).
pub fn is_supported(ty: &Type) -> bool {
    codec_for(ty).is_some()
}

/// The raw binary bytes of a cell, whatever its type.
struct RawCell<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawCell<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A decoder for one built-in scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Char,
    Uuid,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Json,
    Jsonb,
    Bytea,
    Inet,
}

/// How to decode a column, resolved once from its type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Codec {
    Scalar(Scalar),
    Array { elem_oid: u32, elem: Box<Codec> },
}

/// Built-in types by identity. Only these OIDs are trusted to carry these formats; an
/// extension type that merely looks like text (e.g. `citext`) has another OID and is refused.
static SCALARS: [(Type, Scalar); 25] = [
    (Type::BOOL, Scalar::Bool),
    (Type::INT2, Scalar::Int2),
    (Type::INT4, Scalar::Int4),
    (Type::INT8, Scalar::Int8),
    (Type::OID, Scalar::Oid),
    (Type::FLOAT4, Scalar::Float4),
    (Type::FLOAT8, Scalar::Float8),
    (Type::NUMERIC, Scalar::Numeric),
    (Type::TEXT, Scalar::Text),
    (Type::VARCHAR, Scalar::Text),
    (Type::BPCHAR, Scalar::Text),
    (Type::NAME, Scalar::Text),
    (Type::UNKNOWN, Scalar::Text),
    (Type::CHAR, Scalar::Char),
    (Type::UUID, Scalar::Uuid),
    (Type::DATE, Scalar::Date),
    (Type::TIME, Scalar::Time),
    (Type::TIMETZ, Scalar::TimeTz),
    (Type::TIMESTAMP, Scalar::Timestamp),
    (Type::TIMESTAMPTZ, Scalar::TimestampTz),
    (Type::INTERVAL, Scalar::Interval),
    (Type::JSON, Scalar::Json),
    (Type::JSONB, Scalar::Jsonb),
    (Type::BYTEA, Scalar::Bytea),
    (Type::INET, Scalar::Inet),
];

fn codec_for(ty: &Type) -> Option<Codec> {
    if *ty == Type::CIDR {
        return Some(Codec::Scalar(Scalar::Inet));
    }
    if let Some((_, scalar)) = SCALARS.iter().find(|(known, _)| known == ty) {
        return Some(Codec::Scalar(*scalar));
    }
    match ty.kind() {
        // An enum's binary format is its label.
        Kind::Enum(_) => Some(Codec::Scalar(Scalar::Text)),
        // A domain's values travel in its base type's format.
        Kind::Domain(base) => codec_for(base),
        Kind::Array(elem) => Some(Codec::Array {
            elem_oid: elem.oid(),
            elem: Box::new(codec_for(elem)?),
        }),
        Kind::Simple | Kind::Pseudo | Kind::Range(_) | Kind::Multirange(_) | Kind::Composite(_) => {
            None
        }
        // `Kind` is non-exhaustive: a kind we have not reviewed is not supported.
        _ => None,
    }
}

/// Why decoding failed, before the column is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The bytes are not the type's binary format.
    Malformed,
    /// The value is fine but JSON would lose part of it.
    Unrepresentable(&'static str),
}

fn decode(codec: &Codec, raw: &[u8]) -> Result<Value, Fault> {
    match codec {
        Codec::Scalar(scalar) => decode_scalar(*scalar, raw),
        Codec::Array { elem_oid, elem } => decode_array(raw, *elem_oid, elem),
    }
}

fn decode_scalar(scalar: Scalar, raw: &[u8]) -> Result<Value, Fault> {
    Ok(match scalar {
        Scalar::Bool => Value::Bool(be::<1>(raw)? != [0]),
        Scalar::Int2 => Value::from(i16::from_be_bytes(be(raw)?)),
        Scalar::Int4 => Value::from(i32::from_be_bytes(be(raw)?)),
        Scalar::Oid => Value::from(u32::from_be_bytes(be(raw)?)),
        Scalar::Int8 => int8_to_json(i64::from_be_bytes(be(raw)?)),
        Scalar::Float4 => float4_to_json(f32::from_be_bytes(be(raw)?)),
        Scalar::Float8 => float8_to_json(f64::from_be_bytes(be(raw)?)),
        Scalar::Numeric => Value::String(numeric_to_string(raw)?),
        Scalar::Text => Value::String(utf8(raw)?.to_owned()),
        Scalar::Char => Value::String(char_to_string(raw)?),
        Scalar::Uuid => Value::String(uuid_to_string(be(raw)?)),
        Scalar::Date => Value::String(date_to_string(i32::from_be_bytes(be(raw)?))),
        Scalar::Time => Value::String(time_to_string(i64::from_be_bytes(be(raw)?))?),
        Scalar::TimeTz => Value::String(timetz_to_string(raw)?),
        Scalar::Timestamp => Value::String(timestamp_to_string(i64::from_be_bytes(be(raw)?), "")),
        Scalar::TimestampTz => {
            Value::String(timestamp_to_string(i64::from_be_bytes(be(raw)?), "Z"))
        }
        Scalar::Interval => Value::String(interval_to_string(raw)?),
        Scalar::Json => json_to_value(raw)?,
        Scalar::Jsonb => match raw.split_first() {
            // Version 1 is the only jsonb binary format: a version byte, then the text.
            Some((1, text)) => json_to_value(text)?,
            _ => return Err(Fault::Malformed),
        },
        Scalar::Bytea => Value::String(bytea_to_string(raw)),
        Scalar::Inet => Value::String(inet_to_string(raw)?),
    })
}

/// Exactly `N` bytes, or the value is malformed.
fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], Fault> {
    raw.try_into().map_err(|_| Fault::Malformed)
}

fn utf8(raw: &[u8]) -> Result<&str, Fault> {
    std::str::from_utf8(raw).map_err(|_| Fault::Malformed)
}

/// A cursor over big-endian binary data.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.0.len() {
            return Err(Fault::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        be(self.take(N)?)
    }

    fn u8(&mut self) -> Result<u8, Fault> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, Fault> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, Fault> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, Fault> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Fault> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Fault> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.0.len()
    }

    /// Trailing bytes mean we misread the format.
    fn finish(self) -> Result<(), Fault> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Fault::Malformed)
        }
    }
}

fn int8_to_json(v: i64) -> Value {
    // INVARIANT: a JSON number leaving pgward is exact in an IEEE double, so JavaScript
    // clients cannot round an id or a counter; larger values travel as exact strings.
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
        Value::from(v)
    } else {
        Value::String(v.to_string())
    }
}

fn non_finite(v: f64) -> Option<Value> {
    if v.is_nan() {
        Some(Value::String("NaN".to_owned()))
    } else if v == f64::INFINITY {
        Some(Value::String("Infinity".to_owned()))
    } else if v == f64::NEG_INFINITY {
        Some(Value::String("-Infinity".to_owned()))
    } else {
        None
    }
}

fn float8_to_json(v: f64) -> Value {
    non_finite(v)
        .or_else(|| Number::from_f64(v).map(Value::Number))
        .unwrap_or(Value::Null)
}

fn float4_to_json(v: f32) -> Value {
    // Widening 0.1f32 gives 0.10000000149011612; Postgres prints `0.1`. Go through the
    // shortest decimal that identifies the f32, which is what Postgres prints.
    let widened = f64::from(v);
    if let Some(special) = non_finite(widened) {
        return special;
    }
    let shortest = v.to_string().parse::<f64>().unwrap_or(widened);
    float8_to_json(shortest)
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
const NUMERIC_DSCALE_MAX: u16 = 0x3FFF;
const NBASE: i16 = 10_000;

/// The text Postgres prints for a binary `numeric` (mirrors `get_str_from_var`).
fn numeric_to_string(raw: &[u8]) -> Result<String, Fault> {
    let mut r = Reader(raw);
    let ndigits = r.i16()?;
    let weight = r.i16()?;
    let sign = r.u16()?;
    let dscale = r.u16()?;
    let ndigits = usize::try_from(ndigits).map_err(|_| Fault::Malformed)?;
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let digit = r.i16()?;
        if !(0..NBASE).contains(&digit) {
            return Err(Fault::Malformed);
        }
        digits.push(digit);
    }
    r.finish()?;
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_owned()),
        NUMERIC_PINF => return Ok("Infinity".to_owned()),
        NUMERIC_NINF => return Ok("-Infinity".to_owned()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err(Fault::Malformed),
    }
    if dscale > NUMERIC_DSCALE_MAX {
        return Err(Fault::Malformed);
    }

    let digit_at = |d: i32| -> i16 {
        usize::try_from(d)
            .ok()
            .and_then(|d| digits.get(d).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    let weight = i32::from(weight);
    let mut d: i32 = 0;
    if weight < 0 {
        d = weight + 1;
        out.push('0');
    } else {
        while d <= weight {
            let digit = digit_at(d);
            if d == 0 {
                // The first group prints without leading zeros.
                let _ = write!(out, "{digit}");
            } else {
                let _ = write!(out, "{digit:04}");
            }
            d += 1;
        }
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + usize::from(dscale);
        while out.len() < end {
            let _ = write!(out, "{:04}", digit_at(d));
            d += 1;
        }
        out.truncate(end);
    }
    Ok(out)
}

/// Postgres' `charout`: the byte itself, or `\ooo` for a byte with the high bit set.
fn char_to_string(raw: &[u8]) -> Result<String, Fault> {
    Ok(match raw {
        [] | [0] => String::new(),
        [b] if b.is_ascii() => char::from(*b).to_string(),
        [b] => format!("\\{:03o}", b),
        _ => return Err(Fault::Malformed),
    })
}

fn uuid_to_string(bytes: [u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn bytea_to_string(raw: &[u8]) -> String {
    let mut out = String::with_capacity(2 + raw.len() * 2);
    out.push_str("\\x");
    for b in raw {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`; exact for the whole `i64` range we feed it).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `v` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = v;
    let mut len = 0;
    while len == 0 || n > 0 {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    for _ in len..width {
        out.push('0');
    }
    for d in digits[..len].iter().rev() {
        out.push(char::from(*d));
    }
}

/// Appends the ISO 8601 date of a day count from 2000-01-01, astronomical years (1 BC is
/// year 0).
fn push_date(out: &mut String, pg_days: i64) {
    let (year, month, day) = civil_from_days(pg_days + PG_EPOCH_UNIX_DAYS);
    if year < 0 {
        out.push('-');
    } else if year > 9999 {
        out.push('+');
    }
    push_padded(out, year.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, month.unsigned_abs(), 2);
    out.push('-');
    push_padded(out, day.unsigned_abs(), 2);
}

fn date_to_string(pg_days: i32) -> String {
    match pg_days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        days => {
            let mut out = String::with_capacity(10);
            push_date(&mut out, i64::from(days));
            out
        }
    }
}

/// Appends `.ffffff` with trailing zeros removed, or nothing for a whole second (`micros` is
/// under a second).
fn push_fraction(out: &mut String, micros: u64) {
    if micros != 0 {
        let mut digits = 6;
        let mut v = micros;
        while digits > 0 && v.is_multiple_of(10) {
            v /= 10;
            digits -= 1;
        }
        out.push('.');
        push_padded(out, v, digits);
    }
}

/// Appends `HH:MM:SS[.ffffff]` for microseconds since midnight (0 through 24:00:00;
/// never negative).
fn push_time_of_day(out: &mut String, micros: i64) {
    push_padded(out, (micros / USECS_PER_HOUR).unsigned_abs(), 2);
    out.push(':');
    push_padded(
        out,
        (micros % USECS_PER_HOUR / USECS_PER_MINUTE).unsigned_abs(),
        2,
    );
    out.push(':');
    push_padded(
        out,
        (micros % USECS_PER_MINUTE / USECS_PER_SEC).unsigned_abs(),
        2,
    );
    push_fraction(out, (micros % USECS_PER_SEC).unsigned_abs());
}

fn time_to_string(micros: i64) -> Result<String, Fault> {
    if !(0..=USECS_PER_DAY).contains(&micros) {
        return Err(Fault::Malformed);
    }
    let mut out = String::with_capacity(15);
    push_time_of_day(&mut out, micros);
    Ok(out)
}

/// `timetz`: microseconds since midnight, then the zone as seconds *west* of UTC.
fn timetz_to_string(raw: &[u8]) -> Result<String, Fault> {
    let mut r = Reader(raw);
    let micros = r.i64()?;
    let zone_west = r.i32()?;
    r.finish()?;
    let mut out = time_to_string(micros)?;
    let east = -i64::from(zone_west);
    out.push(if east < 0 { '-' } else { '+' });
    let east = east.unsigned_abs();
    let _ = write!(out, "{:02}:{:02}", east / 3600, east % 3600 / 60);
    if east % 60 != 0 {
        let _ = write!(out, ":{:02}", east % 60);
    }
    Ok(out)
}

/// Microseconds since 2000-01-01 00:00:00 as ISO 8601, followed by `suffix`.
fn timestamp_to_string(micros: i64, suffix: &str) -> String {
    match micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        micros => {
            let mut out = String::with_capacity(27 + suffix.len());
            push_date(&mut out, micros.div_euclid(USECS_PER_DAY));
            out.push('T');
            push_time_of_day(&mut out, micros.rem_euclid(USECS_PER_DAY));
            out.push_str(suffix);
            out
        }
    }
}

/// ISO 8601 duration, exactly as Postgres prints an interval under
/// `intervalstyle = iso_8601` (mirrors `EncodeInterval`): each field keeps its own sign.
fn interval_to_string(raw: &[u8]) -> Result<String, Fault> {
    let mut r = Reader(raw);
    let time = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    r.finish()?;
    // Postgres 17 infinities.
    if (time, days, months) == (i64::MAX, i32::MAX, i32::MAX) {
        return Ok("infinity".to_owned());
    }
    if (time, days, months) == (i64::MIN, i32::MIN, i32::MIN) {
        return Ok("-infinity".to_owned());
    }
    let years = months / 12;
    let months = months % 12;
    let hours = time / USECS_PER_HOUR;
    let minutes = time % USECS_PER_HOUR / USECS_PER_MINUTE;
    let seconds = time % USECS_PER_MINUTE / USECS_PER_SEC;
    let fraction = time % USECS_PER_SEC;
    if years == 0 && months == 0 && days == 0 && time == 0 {
        return Ok("PT0S".to_owned());
    }
    let mut out = String::from("P");
    let part = |out: &mut String, value: i64, unit: char| {
        if value != 0 {
            let _ = write!(out, "{value}{unit}");
        }
    };
    part(&mut out, years.into(), 'Y');
    part(&mut out, months.into(), 'M');
    part(&mut out, days.into(), 'D');
    if time != 0 {
        out.push('T');
    }
    part(&mut out, hours, 'H');
    part(&mut out, minutes, 'M');
    if seconds != 0 || fraction != 0 {
        if seconds < 0 || fraction < 0 {
            out.push('-');
        }
        let _ = write!(out, "{}", seconds.unsigned_abs());
        push_fraction(&mut out, fraction.unsigned_abs());
        out.push('S');
    }
    Ok(out)
}

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// The text Postgres prints for `inet`/`cidr` (mirrors `network_out`/`pg_inet_net_ntop`):
/// `/bits` follows when the mask is not the full width, and always for `cidr`.
fn inet_to_string(raw: &[u8]) -> Result<String, Fault> {
    let mut r = Reader(raw);
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()?;
    let len = r.u8()?;
    let addr = r.take(usize::from(len))?;
    r.finish()?;
    let (mut out, max_bits) = match (family, addr) {
        (PGSQL_AF_INET, [a, b, c, d]) => (format!("{a}.{b}.{c}.{d}"), 32),
        (PGSQL_AF_INET6, addr) => (ipv6_to_string(be(addr)?), 128),
        _ => return Err(Fault::Malformed),
    };
    if bits > max_bits || is_cidr > 1 {
        return Err(Fault::Malformed);
    }
    if bits != max_bits || is_cidr == 1 {
        let _ = write!(out, "/{bits}");
    }
    Ok(out)
}

/// IPv6 text as Postgres' `inet_net_ntop_ipv6` writes it: the longest run (two or more) of
/// zero groups becomes `::`, and IPv4-compatible (`::a.b.c.d`) or IPv4-mapped
/// (`::ffff:a.b.c.d`) addresses end in dotted decimal.
fn ipv6_to_string(addr: [u8; 16]) -> String {
    let mut words = [0u16; 8];
    for (word, pair) in words.iter_mut().zip(addr.chunks_exact(2)) {
        *word = pair.iter().fold(0, |acc, b| (acc << 8) | u16::from(*b));
    }
    // (start, len) of the first longest run of zero words.
    let mut best: Option<(usize, usize)> = None;
    let mut run: Option<(usize, usize)> = None;
    for (i, word) in words.iter().enumerate() {
        if *word == 0 {
            run = Some(run.map_or((i, 1), |(start, len)| (start, len + 1)));
        } else {
            run = None;
        }
        if let Some((_, len)) = run
            && best.is_none_or(|(_, best_len)| len > best_len)
        {
            best = run;
        }
    }
    let best = best.filter(|(_, len)| *len >= 2);
    let embedded_v4 = match best {
        Some((0, 6)) => true,
        Some((0, 5)) => words[5] == 0xffff,
        _ => false,
    };
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some((start, len)) = best
            && i == start
        {
            out.push(':');
            i += len;
            if i == 8 {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && embedded_v4 {
            let _ = write!(out, "{}.{}.{}.{}", addr[12], addr[13], addr[14], addr[15]);
            break;
        }
        let _ = write!(out, "{:x}", words[i]);
        i += 1;
    }
    out
}

fn json_to_value(text: &[u8]) -> Result<Value, Fault> {
    check_json_numbers(text)?;
    serde_json::from_slice(text).map_err(|_| Fault::Malformed)
}

/// Refuses a document with a number serde_json would round. Without serde_json's
/// `arbitrary_precision` feature (not enabled in this crate), integers beyond 64 bits and all
/// non-integers become `f64`; Postgres keeps jsonb numbers as exact `numeric`.
fn check_json_numbers(text: &[u8]) -> Result<(), Fault> {
    let mut bytes = text.iter().copied().peekable();
    let mut in_string = false;
    while let Some(b) = bytes.next() {
        if in_string {
            match b {
                b'\\' => {
                    bytes.next();
                }
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let mut token = String::from(char::from(b));
                while let Some(next) =
                    bytes.next_if(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    token.push(char::from(next));
                }
                if !json_number_is_exact(&token) {
                    return Err(Fault::Unrepresentable(
                        "a number with more precision than a JSON double",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether serde_json keeps this number token's exact value.
fn json_number_is_exact(token: &str) -> bool {
    if !token.contains(['.', 'e', 'E'])
        && (token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok())
    {
        return true;
    }
    let Ok(parsed) = token.parse::<f64>() else {
        // Not a number at all: the parser reports it.
        return true;
    };
    if !parsed.is_finite() {
        return false;
    }
    decimal_parts(token) == decimal_parts(&format!("{parsed:e}"))
}

/// A decimal as (negative, significant digits, exponent), zero as `(false, "", 0)`, so two
/// spellings of one value compare equal.
fn decimal_parts(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut exponent = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let all = format!("{int}{frac}");
    let trimmed = all.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    exponent = exponent.checked_add(i64::try_from(trimmed.len() - significant.len()).ok()?)?;
    Some((negative, significant.to_owned(), exponent))
}

fn decode_array(raw: &[u8], elem_oid: u32, elem: &Codec) -> Result<Value, Fault> {
    let mut r = Reader(raw);
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    if r.u32()? != elem_oid || !(0..=MAX_ARRAY_DIMS).contains(&ndim) {
        return Err(Fault::Malformed);
    }
    let mut dims = Vec::new();
    let mut shifted = false;
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).map_err(|_| Fault::Malformed)?;
        shifted |= r.i32()? != 1;
        dims.push(len);
    }
    // Every element costs at least its 4-byte length, which bounds the allocation below.
    let total = dims
        .iter()
        .try_fold(1usize, |acc, len| acc.checked_mul(*len))
        .filter(|total| ndim == 0 || *total <= r.remaining() / 4)
        .ok_or(Fault::Malformed)?;
    if ndim == 0 {
        r.finish()?;
        return Ok(Value::Array(Vec::new()));
    }
    let mut elements = Vec::with_capacity(total);
    for _ in 0..total {
        let len = r.i32()?;
        if len == -1 {
            elements.push(Value::Null);
        } else {
            let bytes = r.take(usize::try_from(len).map_err(|_| Fault::Malformed)?)?;
            elements.push(decode(elem, bytes)?);
        }
    }
    r.finish()?;
    if shifted {
        return Err(Fault::Unrepresentable(
            "an array whose indexes do not start at 1",
        ));
    }
    let mut elements = elements.into_iter();
    Ok(nest(&dims, &mut elements))
}

/// Folds a flat, row-major element list into nested arrays of the given dimensions.
fn nest(dims: &[usize], elements: &mut impl Iterator<Item = Value>) -> Value {
    match dims.split_first() {
        None => elements.next().unwrap_or(Value::Null),
        Some((len, rest)) => Value::Array((0..*len).map(|_| nest(rest, elements)).collect()),
    }
}

/// A column name as SQL would spell it, for the cast we suggest.
fn sql_ident(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
// `allow`, not `expect`: these lints are denied only outside tests, and a project-wide
// `allow-*-in-tests` clippy setting would make an `expect` here unfulfilled.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
mod tests {
    use super::*;

    /// Binary numeric: ndigits, weight, sign, dscale, then base-10000 digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&i16::try_from(digits.len()).unwrap().to_be_bytes());
        raw.extend_from_slice(&weight.to_be_bytes());
        raw.extend_from_slice(&sign.to_be_bytes());
        raw.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_fixtures() {
        let cases: &[(Vec<u8>, &str)] = &[
            (numeric(0, NUMERIC_POS, 0, &[]), "0"),
            (numeric(0, NUMERIC_POS, 2, &[]), "0.00"),
            (numeric(0, NUMERIC_NAN, 0, &[]), "NaN"),
            (numeric(0, NUMERIC_PINF, 0, &[]), "Infinity"),
            (numeric(0, NUMERIC_NINF, 0, &[]), "-Infinity"),
            (numeric(0, NUMERIC_POS, 2, &[1, 5000]), "1.50"),
            (numeric(0, NUMERIC_NEG, 4, &[12, 3400]), "-12.3400"),
            (numeric(-5, NUMERIC_POS, 20, &[1]), "0.00000000000000000001"),
            (numeric(-1, NUMERIC_NEG, 1, &[5000]), "-0.5"),
            (numeric(1, NUMERIC_POS, 0, &[1]), "10000"),
            (numeric(2, NUMERIC_POS, 0, &[12, 0, 7]), "1200000007"),
            (numeric(0, NUMERIC_POS, 6, &[3, 1415]), "3.141500"),
            (
                numeric(
                    7,
                    NUMERIC_POS,
                    3,
                    &[12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 1230],
                ),
                "123456789012345678901234567890.123",
            ),
            // Digits beyond dscale are cut, as Postgres does.
            (numeric(0, NUMERIC_POS, 1, &[1, 2345]), "1.2"),
            (numeric(-2, NUMERIC_POS, 8, &[1]), "0.00000001"),
        ];
        for (raw, expected) in cases {
            assert_eq!(numeric_to_string(raw).as_deref(), Ok(*expected));
        }
    }

    #[test]
    fn numeric_rejects_malformed() {
        let mut truncated = numeric(0, NUMERIC_POS, 0, &[1, 2]);
        truncated.pop();
        let cases = [
            truncated,
            numeric(0, NUMERIC_POS, 0, &[10_000]),
            numeric(0, NUMERIC_POS, 0, &[-1]),
            numeric(0, 0x1234, 0, &[1]),
            numeric(0, NUMERIC_POS, 0x4000, &[1]),
            vec![0xff, 0xff, 0, 0, 0, 0, 0, 0],
            vec![0, 0],
        ];
        for raw in cases {
            assert_eq!(numeric_to_string(&raw), Err(Fault::Malformed), "{raw:?}");
        }
    }

    fn interval(micros: i64, days: i32, months: i32) -> Vec<u8> {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(&days.to_be_bytes());
        raw.extend_from_slice(&months.to_be_bytes());
        raw
    }

    #[test]
    fn interval_fixtures() {
        let hms =
            |h: i64, m: i64, s: i64| h * USECS_PER_HOUR + m * USECS_PER_MINUTE + s * USECS_PER_SEC;
        let cases = [
            (interval(0, 0, 0), "PT0S"),
            (interval(hms(4, 5, 6) + 500_000, 3, 14), "P1Y2M3DT4H5M6.5S"),
            (interval(0, 0, 12), "P1Y"),
            (interval(0, 1, 0), "P1D"),
            (interval(1, 0, 0), "PT0.000001S"),
            (interval(-500_000, 0, 0), "PT-0.5S"),
            (interval(-hms(1, 2, 3), 0, 0), "PT-1H-2M-3S"),
            (interval(hms(1, 0, 0), -3, -14), "P-1Y-2M-3DT1H"),
            (interval(hms(0, 30, 0), 0, 0), "PT30M"),
            (interval(hms(100, 0, 0), 0, 0), "PT100H"),
            (interval(i64::MAX, i32::MAX, i32::MAX), "infinity"),
            (interval(i64::MIN, i32::MIN, i32::MIN), "-infinity"),
            (interval(i64::MIN, 0, 0), "PT-2562047788H-54.775808S"),
        ];
        for (raw, expected) in cases {
            assert_eq!(interval_to_string(&raw).as_deref(), Ok(expected));
        }
        assert_eq!(interval_to_string(&[0; 15]), Err(Fault::Malformed));
        assert_eq!(interval_to_string(&[0; 17]), Err(Fault::Malformed));
    }

    fn inet(family: u8, bits: u8, is_cidr: u8, addr: &[u8]) -> Vec<u8> {
        let mut raw = vec![family, bits, is_cidr, u8::try_from(addr.len()).unwrap()];
        raw.extend_from_slice(addr);
        raw
    }

    fn v6(words: [u16; 8]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn inet_fixtures() {
        let cases = [
            (inet(2, 32, 0, &[10, 0, 0, 1]), "10.0.0.1"),
            (inet(2, 24, 0, &[192, 168, 1, 7]), "192.168.1.7/24"),
            (inet(2, 8, 1, &[10, 0, 0, 0]), "10.0.0.0/8"),
            (inet(2, 32, 1, &[10, 1, 2, 3]), "10.1.2.3/32"),
            (inet(3, 128, 0, &v6([0; 8])), "::"),
            (inet(3, 128, 0, &v6([0, 0, 0, 0, 0, 0, 0, 1])), "::1"),
            (
                inet(3, 128, 0, &v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])),
                "2001:db8::1",
            ),
            (
                inet(3, 64, 1, &v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0])),
                "2001:db8::/64",
            ),
            (
                inet(3, 128, 0, &v6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])),
                "2001:db8:0:1::1",
            ),
            (inet(3, 128, 0, &v6([1, 0, 0, 2, 0, 0, 0, 3])), "1:0:0:2::3"),
            (
                inet(3, 128, 0, &v6([1, 2, 3, 4, 5, 6, 0, 8])),
                "1:2:3:4:5:6:0:8",
            ),
            (
                inet(3, 128, 0, &v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304])),
                "::ffff:1.2.3.4",
            ),
            (
                inet(3, 128, 0, &v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304])),
                "::1.2.3.4",
            ),
            (inet(3, 128, 0, &v6([1, 0, 0, 0, 0, 0, 0, 0])), "1::"),
        ];
        for (raw, expected) in cases {
            assert_eq!(inet_to_string(&raw).as_deref(), Ok(expected));
        }
        let malformed = [
            inet(2, 33, 0, &[1, 2, 3, 4]),
            inet(2, 32, 0, &[1, 2, 3]),
            inet(3, 129, 0, &v6([0; 8])),
            inet(3, 128, 0, &[0; 4]),
            inet(4, 32, 0, &[1, 2, 3, 4]),
            vec![2, 32, 0, 4, 1, 2, 3, 4, 5],
            vec![2, 32],
        ];
        for raw in malformed {
            assert_eq!(inet_to_string(&raw), Err(Fault::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_to_string(0), "2000-01-01");
        assert_eq!(date_to_string(-1), "1999-12-31");
        assert_eq!(date_to_string(8766), "2024-01-01");
        assert_eq!(date_to_string(-730_119), "0001-01-01");
        assert_eq!(date_to_string(-730_120), "0000-12-31");
        assert_eq!(date_to_string(2_914_635), "9980-01-01");
        assert_eq!(date_to_string(2_922_306), "+10001-01-01");
        assert_eq!(date_to_string(-2_451_545), "-4713-11-24");
        assert_eq!(date_to_string(i32::MAX), "infinity");
        assert_eq!(date_to_string(i32::MIN), "-infinity");

        let t = 3 * USECS_PER_HOUR + 4 * USECS_PER_MINUTE + 5 * USECS_PER_SEC;
        assert_eq!(time_to_string(t).as_deref(), Ok("03:04:05"));
        assert_eq!(time_to_string(t + 120_000).as_deref(), Ok("03:04:05.12"));
        assert_eq!(time_to_string(t + 1).as_deref(), Ok("03:04:05.000001"));
        assert_eq!(time_to_string(USECS_PER_DAY).as_deref(), Ok("24:00:00"));
        assert_eq!(time_to_string(-1), Err(Fault::Malformed));

        let day = 8767 * USECS_PER_DAY;
        assert_eq!(
            timestamp_to_string(day + t + 123_456, ""),
            "2024-01-02T03:04:05.123456"
        );
        assert_eq!(
            timestamp_to_string(day + t + 500_000, "Z"),
            "2024-01-02T03:04:05.5Z"
        );
        assert_eq!(timestamp_to_string(-1, ""), "1999-12-31T23:59:59.999999");
        assert_eq!(timestamp_to_string(i64::MAX, "Z"), "infinity");
        assert_eq!(timestamp_to_string(i64::MIN, ""), "-infinity");

        let mut tz = t.to_be_bytes().to_vec();
        tz.extend_from_slice(&(-19_800i32).to_be_bytes());
        assert_eq!(timetz_to_string(&tz).as_deref(), Ok("03:04:05+05:30"));
        let mut tz = t.to_be_bytes().to_vec();
        tz.extend_from_slice(&3_615i32.to_be_bytes());
        assert_eq!(timetz_to_string(&tz).as_deref(), Ok("03:04:05-01:00:15"));
    }

    #[test]
    fn scalars() {
        let s = |scalar, raw: &[u8]| decode_scalar(scalar, raw);
        assert_eq!(s(Scalar::Bool, &[1]), Ok(Value::Bool(true)));
        assert_eq!(s(Scalar::Bool, &[0]), Ok(Value::Bool(false)));
        assert_eq!(s(Scalar::Bool, &[]), Err(Fault::Malformed));
        assert_eq!(s(Scalar::Int2, &(-7i16).to_be_bytes()), Ok(Value::from(-7)));
        assert_eq!(s(Scalar::Int4, &[0, 0, 1]), Err(Fault::Malformed));
        assert_eq!(
            s(Scalar::Oid, &u32::MAX.to_be_bytes()),
            Ok(Value::from(u32::MAX))
        );
        for (v, expected) in [
            (MAX_SAFE_INTEGER, Value::from(MAX_SAFE_INTEGER)),
            (-MAX_SAFE_INTEGER, Value::from(-MAX_SAFE_INTEGER)),
            (MAX_SAFE_INTEGER + 1, Value::from("9007199254740992")),
            (-MAX_SAFE_INTEGER - 1, Value::from("-9007199254740992")),
            (i64::MIN, Value::from("-9223372036854775808")),
        ] {
            assert_eq!(s(Scalar::Int8, &v.to_be_bytes()), Ok(expected));
        }
        assert_eq!(
            s(Scalar::Float4, &0.1f32.to_be_bytes()),
            Ok(Value::from(0.1))
        );
        assert_eq!(
            s(Scalar::Float4, &f32::NAN.to_be_bytes()),
            Ok(Value::from("NaN"))
        );
        assert_eq!(
            s(Scalar::Float8, &f64::INFINITY.to_be_bytes()),
            Ok(Value::from("Infinity"))
        );
        assert_eq!(
            s(Scalar::Float4, &f32::NEG_INFINITY.to_be_bytes()),
            Ok(Value::from("-Infinity"))
        );
        assert_eq!(
            s(Scalar::Float8, &1.25f64.to_be_bytes()),
            Ok(Value::from(1.25))
        );
        assert_eq!(s(Scalar::Text, b"h\xc3\xa9"), Ok(Value::from("h\u{e9}")));
        assert_eq!(s(Scalar::Text, b"\xff"), Err(Fault::Malformed));
        assert_eq!(s(Scalar::Char, b"a"), Ok(Value::from("a")));
        assert_eq!(s(Scalar::Char, &[0]), Ok(Value::from("")));
        assert_eq!(s(Scalar::Char, &[0xe9]), Ok(Value::from("\\351")));
        assert_eq!(
            s(Scalar::Bytea, &[0xde, 0xad, 0xbe, 0xef]),
            Ok(Value::from("\\xdeadbeef"))
        );
        assert_eq!(s(Scalar::Bytea, &[]), Ok(Value::from("\\x")));
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            s(Scalar::Uuid, &uuid),
            Ok(Value::from("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
        );
        assert_eq!(
            s(Scalar::Jsonb, b"\x01{\"a\":[1,2]}"),
            Ok(serde_json::json!({"a": [1, 2]}))
        );
        assert_eq!(s(Scalar::Jsonb, b"\x02{}"), Err(Fault::Malformed));
        assert_eq!(
            s(Scalar::Json, b"[1, 2.5, \"x\"]"),
            Ok(serde_json::json!([1, 2.5, "x"]))
        );
        assert_eq!(s(Scalar::Json, b"{"), Err(Fault::Malformed));
    }

    #[test]
    fn json_numbers_must_stay_exact() {
        for exact in [
            "0",
            "-0",
            "1.50",
            "0.1",
            "1e3",
            "-2.5E-3",
            "18446744073709551615",
            "-9223372036854775808",
            "123456789012345680000",
            "1.7976931348623157e308",
            "[1, \"1.00000000000000000000001\"]",
        ] {
            assert_eq!(check_json_numbers(exact.as_bytes()), Ok(()), "{exact}");
        }
        for inexact in [
            "1.00000000000000000000001",
            "18446744073709551616",
            "{\"a\": [0.30000000000000000001]}",
            "1e400",
            "123456789012345678901",
        ] {
            assert!(
                matches!(
                    check_json_numbers(inexact.as_bytes()),
                    Err(Fault::Unrepresentable(_))
                ),
                "{inexact}"
            );
        }
        // Escaped quotes do not end a string early.
        assert_eq!(
            check_json_numbers(br#"["a\"1.00000000000000000001"]"#),
            Ok(())
        );
    }

    fn array(elem_oid: u32, dims: &[(i32, i32)], elements: &[Option<&[u8]>]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&i32::try_from(dims.len()).unwrap().to_be_bytes());
        raw.extend_from_slice(&i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
        raw.extend_from_slice(&elem_oid.to_be_bytes());
        for (len, lower) in dims {
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(&lower.to_be_bytes());
        }
        for element in elements {
            match element {
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(bytes) => {
                    raw.extend_from_slice(&i32::try_from(bytes.len()).unwrap().to_be_bytes());
                    raw.extend_from_slice(bytes);
                }
            }
        }
        raw
    }

    #[test]
    fn arrays() {
        let int4 = Codec::Scalar(Scalar::Int4);
        let oid = Type::INT4.oid();
        let one = 1i32.to_be_bytes();
        let three = 3i32.to_be_bytes();
        let four = 4i32.to_be_bytes();
        let raw = array(
            oid,
            &[(2, 1), (2, 1)],
            &[Some(&one), None, Some(&three), Some(&four)],
        );
        assert_eq!(
            decode_array(&raw, oid, &int4),
            Ok(serde_json::json!([[1, null], [3, 4]]))
        );
        assert_eq!(
            decode_array(&array(oid, &[], &[]), oid, &int4),
            Ok(serde_json::json!([]))
        );
        let shifted = array(oid, &[(1, 0)], &[Some(&one)]);
        assert!(matches!(
            decode_array(&shifted, oid, &int4),
            Err(Fault::Unrepresentable(_))
        ));
        let malformed = [
            array(oid + 1, &[(1, 1)], &[Some(&one)]),
            array(oid, &[(2, 1)], &[Some(&one)]),
            array(oid, &[(1, 1)], &[Some(&one), Some(&one)]),
            array(oid, &[(1, 1)], &[Some(&[0, 1])]),
            array(oid, &[(i32::MAX, 1), (i32::MAX, 1)], &[]),
            array(oid, &[(-1, 1)], &[]),
            array(oid, &[(1, 1); 7], &[Some(&one)]),
        ];
        for raw in malformed {
            assert_eq!(
                decode_array(&raw, oid, &int4),
                Err(Fault::Malformed),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn support_follows_type_identity() {
        for ty in [
            Type::BOOL,
            Type::INT8,
            Type::NUMERIC,
            Type::NAME,
            Type::CHAR,
            Type::CIDR,
            Type::INT4_ARRAY,
            Type::JSONB_ARRAY,
            Type::TIMESTAMPTZ_ARRAY,
        ] {
            assert!(is_supported(&ty), "{ty}");
        }
        for ty in [
            Type::MONEY,
            Type::XML,
            Type::MONEY_ARRAY,
            Type::INT4_RANGE,
            Type::RECORD,
            Type::POINT,
            Type::TS_VECTOR,
            Type::BIT,
            Type::MACADDR,
            Type::REGCLASS,
        ] {
            assert!(!is_supported(&ty), "{ty}");
        }
        let citext = Type::new("citext".into(), 50_000, Kind::Simple, "public".into());
        assert!(!is_supported(&citext));
        let mood = Type::new(
            "mood".into(),
            50_001,
            Kind::Enum(vec!["happy".into()]),
            "public".into(),
        );
        assert!(is_supported(&mood));
        let moods = Type::new("_mood".into(), 50_002, Kind::Array(mood), "public".into());
        assert!(is_supported(&moods));
        let posint = Type::new(
            "posint".into(),
            50_003,
            Kind::Domain(Type::INT4),
            "public".into(),
        );
        assert!(is_supported(&posint));
        let wallet = Type::new(
            "wallet".into(),
            50_004,
            Kind::Domain(Type::MONEY),
            "public".into(),
        );
        assert!(!is_supported(&wallet));
    }

    #[test]
    fn messages_suggest_a_cast_that_parses() {
        let err = ValueError::Unsupported {
            column: "price".into(),
            type_name: "money".into(),
        };
        assert_eq!(
            err.to_string(),
            "column `price` has type `money`, which pgward cannot return; cast it, e.g. `price::text`"
        );
        let err = ValueError::Unsupported {
            column: "Odd \"Name\"".into(),
            type_name: "xml".into(),
        };
        assert!(
            err.to_string()
                .ends_with("e.g. `\"Odd \"\"Name\"\"\"::text`")
        );
    }

    /// A throwaway PostgreSQL cluster, private to these tests. Dropping it stops the server
    /// and removes its directory, also when a test fails.
    mod cluster {
        use std::net::TcpListener;
        use std::path::{Path, PathBuf};
        use std::process::{Command, Output};

        pub struct TestCluster {
            bindir: PathBuf,
            data: PathBuf,
            as_postgres: bool,
            pub port: u16,
            // Declared last: removed after `Drop::drop` stopped the server.
            dir: tempfile::TempDir,
        }

        fn run(mut command: Command, what: &str) -> Output {
            let output = command
                .output()
                .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
            assert!(
                output.status.success(),
                "{what} failed: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            output
        }

        impl TestCluster {
            fn command(&self, tool: &str) -> Command {
                command(&self.bindir, tool, self.as_postgres)
            }

            pub fn start() -> Self {
                let mut pg_config = Command::new("pg_config");
                pg_config.arg("--bindir");
                let bindir = run(pg_config, "pg_config --bindir (is PostgreSQL installed?)");
                let bindir = PathBuf::from(String::from_utf8(bindir.stdout).unwrap().trim());
                let mut id = Command::new("id");
                id.arg("-u");
                let uid = run(id, "id -u");
                // initdb refuses to run as root.
                let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";

                let dir = tempfile::Builder::new()
                    .prefix("pgward-values-")
                    .tempdir()
                    .unwrap();
                if as_postgres {
                    let mut chown = Command::new("chown");
                    chown.arg("postgres:").arg(dir.path());
                    run(chown, "chown");
                }
                let data = dir.path().join("data");
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let cluster = TestCluster {
                    bindir,
                    data,
                    as_postgres,
                    port,
                    dir,
                };

                let mut initdb = cluster.command("initdb");
                initdb.arg("-D").arg(&cluster.data).args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]);
                run(initdb, "initdb");

                let log = cluster.dir.path().join("server.log");
                let mut pg_ctl = cluster.command("pg_ctl");
                pg_ctl
                    .arg("-D")
                    .arg(&cluster.data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!(
                        "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' -c fsync=off",
                        cluster.port
                    ))
                    .arg("start");
                let output = pg_ctl.output().unwrap();
                assert!(
                    output.status.success(),
                    "pg_ctl start failed: {}\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                cluster
            }

            pub fn connection_string(&self) -> String {
                format!(
                    "host=127.0.0.1 port={} user=postgres dbname=postgres",
                    self.port
                )
            }
        }

        fn command(bindir: &Path, tool: &str, as_postgres: bool) -> Command {
            let program = bindir.join(tool);
            if as_postgres {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            } else {
                Command::new(program)
            }
        }

        impl Drop for TestCluster {
            fn drop(&mut self) {
                if self.data.join("postmaster.pid").exists() {
                    let _ = self
                        .command("pg_ctl")
                        .arg("-D")
                        .arg(&self.data)
                        .args(["-m", "immediate", "-w", "stop"])
                        .output();
                }
            }
        }
    }

    async fn connect(cluster: &cluster::TestCluster) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&cluster.connection_string(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Every cell of every row, through the streaming API pgward uses.
    async fn query_json(
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Vec<Vec<Result<Value, ValueError>>> {
        use futures_util::TryStreamExt as _;
        let stmt = client.prepare(sql).await.unwrap();
        let rows: Vec<Row> = client
            .query_raw(&stmt, std::iter::empty::<i32>())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let decoder = RowDecoder::new(stmt.columns());
        rows.iter()
            .map(|row| (0..row.len()).map(|i| decoded(&decoder, row, i)).collect())
            .collect()
    }

    /// Cell `i` as the executor decodes it (a [`RowDecoder`] made once for the result), checked
    /// to be what [`cell_to_json`] gives, error included.
    fn decoded(decoder: &RowDecoder, row: &Row, i: usize) -> Result<Value, ValueError> {
        let value = decoder.cell(row, i);
        assert_eq!(
            format!("{value:?}"),
            format!("{:?}", cell_to_json(row, i)),
            "column {i}"
        );
        value
    }

    /// One row, as a JSON object by column name.
    async fn select_object(client: &tokio_postgres::Client, sql: &str) -> Value {
        let stmt = client.prepare(sql).await.unwrap();
        for column in stmt.columns() {
            assert!(is_supported(column.type_()), "{}", column.name());
        }
        let row = client.query_one(&stmt, &[]).await.unwrap();
        let decoder = RowDecoder::new(stmt.columns());
        let mut object = serde_json::Map::new();
        for (i, column) in row.columns().iter().enumerate() {
            let value = decoded(&decoder, &row, i)
                .unwrap_or_else(|e| panic!("column {}: {e}", column.name()));
            object.insert(column.name().to_owned(), value);
        }
        Value::Object(object)
    }

    async fn assert_matches_postgres_text(client: &tokio_postgres::Client, sql: &str) {
        let rows = client.query(sql, &[]).await.unwrap();
        assert!(!rows.is_empty(), "{sql}");
        for row in rows {
            let text: String = row.get(1);
            let value = decoded(&RowDecoder::new(row.columns()), &row, 0).unwrap();
            // Postgres separates date and time with a space; we use ISO 8601's `T`.
            let expected = match row.columns()[0].type_() {
                ty if *ty == Type::TIMESTAMP => text.replacen(' ', "T", 1),
                _ => text,
            };
            assert_eq!(value, Value::String(expected), "{sql}");
        }
    }

    #[tokio::test]
    async fn against_a_real_postgres() {
        let cluster = cluster::TestCluster::start();
        let client = connect(&cluster).await;

        let all = select_object(
            &client,
            r#"SELECT
                true AS bool, 7::int2 AS int2, '-2147483648'::int4 AS int4,
                9007199254740991::int8 AS int8_safe, 9007199254740993::int8 AS int8_big,
                '-9223372036854775808'::int8 AS int8_min, 4294967295::oid AS oid,
                0.1::float4 AS float4, 1.5::float8 AS float8, 'NaN'::float8 AS nan,
                'Infinity'::float4 AS inf, '-Infinity'::float8 AS ninf,
                1.50::numeric(10,2) AS num, 'NaN'::numeric AS num_nan,
                'Infinity'::numeric AS num_inf, '-Infinity'::numeric AS num_ninf,
                0.00::numeric(5,2) AS num_zero, -12.3400::numeric AS num_neg,
                1e-20::numeric AS num_tiny,
                123456789012345678901234567890.123::numeric AS num_big,
                'héllo'::text AS text, 'v'::varchar(3) AS varchar, 'ab'::char(4) AS bpchar,
                'nm'::name AS name, 'c'::"char" AS "char",
                'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS uuid,
                '2024-01-02'::date AS date, 'infinity'::date AS date_inf,
                '-infinity'::date AS date_ninf, '0044-03-15 BC'::date AS date_bc,
                '03:04:05.123456'::time AS time, '03:04:05'::time AS time_whole,
                '03:04:05.5+05:30'::timetz AS timetz,
                '2024-01-02 03:04:05.5'::timestamp AS ts, 'infinity'::timestamp AS ts_inf,
                '-infinity'::timestamp AS ts_ninf,
                '2024-01-02 03:04:05.5+02'::timestamptz AS tstz,
                '-infinity'::timestamptz AS tstz_ninf,
                '1 year 2 mons 3 days 04:05:06.5'::interval AS iv, '0'::interval AS iv_zero,
                '-1 day +01:00'::interval AS iv_mixed,
                '{"a":[1,2],"b":{"c":null}}'::jsonb AS jsonb, '[1, "x", 2.5]'::json AS json,
                '\xdeadbeef'::bytea AS bytea, ''::bytea AS bytea_empty,
                '192.168.0.1/24'::inet AS inet, '10.0.0.0/8'::cidr AS cidr,
                '::ffff:1.2.3.4'::inet AS inet6,
                '{{1,NULL},{3,4}}'::int4[] AS int4_2d, '{}'::int4[] AS empty_array,
                ARRAY['a', NULL, 'c'] AS text_array, ARRAY[9007199254740993::int8] AS int8_array,
                ARRAY['2024-01-02'::date, 'infinity'] AS date_array,
                ARRAY['{"k":1}'::jsonb] AS jsonb_array, ARRAY[1.10::numeric] AS numeric_array,
                NULL::text AS null_text, NULL::int4[] AS null_array, NULL::numeric AS null_num
            "#,
        )
        .await;
        // Split in parts: one `json!` this large exceeds the macro recursion limit.
        let parts = [
            serde_json::json!({
            "bool": true, "int2": 7, "int4": -2147483648i64,
            "int8_safe": 9007199254740991i64, "int8_big": "9007199254740993",
            "int8_min": "-9223372036854775808", "oid": 4294967295u32,
            "float4": 0.1, "float8": 1.5, "nan": "NaN", "inf": "Infinity", "ninf": "-Infinity",
            "num": "1.50", "num_nan": "NaN", "num_inf": "Infinity", "num_ninf": "-Infinity",
            "num_zero": "0.00", "num_neg": "-12.3400", "num_tiny": "0.00000000000000000001",
            "num_big": "123456789012345678901234567890.123",
            }),
            serde_json::json!({
            "text": "héllo", "varchar": "v", "bpchar": "ab  ", "name": "nm", "char": "c",
            "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "date": "2024-01-02", "date_inf": "infinity", "date_ninf": "-infinity",
            "date_bc": "-0043-03-15",
            "time": "03:04:05.123456", "time_whole": "03:04:05", "timetz": "03:04:05.5+05:30",
            "ts": "2024-01-02T03:04:05.5", "ts_inf": "infinity", "ts_ninf": "-infinity",
            "tstz": "2024-01-02T01:04:05.5Z", "tstz_ninf": "-infinity",
            "iv": "P1Y2M3DT4H5M6.5S", "iv_zero": "PT0S", "iv_mixed": "P-1DT1H",
            }),
            serde_json::json!({
            "jsonb": {"a": [1, 2], "b": {"c": null}}, "json": [1, "x", 2.5],
            "bytea": "\\xdeadbeef", "bytea_empty": "\\x",
            "inet": "192.168.0.1/24", "cidr": "10.0.0.0/8", "inet6": "::ffff:1.2.3.4",
            "int4_2d": [[1, null], [3, 4]], "empty_array": [],
            "text_array": ["a", null, "c"], "int8_array": ["9007199254740993"],
            "date_array": ["2024-01-02", "infinity"], "jsonb_array": [{"k": 1}],
            "numeric_array": ["1.10"],
            "null_text": null, "null_array": null, "null_num": null,
            }),
        ];
        let mut expected = serde_json::Map::new();
        for part in parts {
            expected.extend(part.as_object().unwrap().clone());
        }
        let all = all.as_object().unwrap();
        for (column, value) in &expected {
            assert_eq!(all.get(column), Some(value), "column {column}");
        }
        assert_eq!(all.len(), expected.len());

        // Our decoders print exactly what Postgres' output functions print, over many
        // generated values (`format('%s', ..)` calls the output function; `inet::text` would not).
        client
            .batch_execute("SET intervalstyle = iso_8601; SET datestyle = ISO")
            .await
            .unwrap();
        for sql in [
            "SELECT v, format('%s', v) FROM (SELECT ((-1)^i * (i::numeric ^ 9) / 7)::numeric(80, 30) AS v
               FROM generate_series(0, 60) i) t",
            "SELECT v, format('%s', v) FROM (SELECT round((i::numeric ^ 5) / 3, i % 23) AS v
               FROM generate_series(0, 60) i) t",
            "SELECT v, format('%s', v) FROM (SELECT 10::numeric ^ (i - 40) * 1.5 AS v
               FROM generate_series(0, 80) i) t",
            "SELECT v, format('%s', v) FROM (SELECT (0.000001 * i * i)::numeric(12, 6) AS v
               FROM generate_series(-40, 40) i) t",
            "SELECT v, format('%s', v) FROM (SELECT make_interval(i % 3 - 1, i % 13 - 6, 0, i % 40 - 20,
               i % 27 - 13, i % 61 - 30, (i % 17 - 8) * 1.234567) AS v
               FROM generate_series(0, 200) i) t",
            "SELECT v, format('%s', v) FROM (SELECT i * interval '1 microsecond' * i * i * i * 997 AS v
               FROM generate_series(-50, 50) i) t",
            "SELECT v, format('%s', v) FROM (VALUES ('::'::inet), ('::1'), ('::2'), ('::1.2.3.4'),
               ('::ffff:1.2.3.4/120'), ('::ffff:0:0'), ('1::'), ('1:0:0:2::3'),
               ('2001:db8:0:0:1:0:0:1'), ('2001:db8::/32'), ('fe80::1:0:0:0/64'),
               ('0:0:1::'), ('1:0:0:0:0:0:0:0'), ('1.2.3.4/0'), ('0.0.0.0')) t(v)",
            "SELECT v, format('%s', v) FROM (VALUES ('10.0.0.0/8'::cidr), ('10.1.2.3/32'), ('::/0'),
               ('2001:db8::/48'), ('::ffff:1.2.3.0/120')) t(v)",
            "SELECT v, format('%s', v) FROM (SELECT (gen_random_uuid()) AS v FROM generate_series(1, 20)) t",
            "SELECT v, format('%s', v) FROM (SELECT decode(md5(i::text), 'hex') AS v
               FROM generate_series(1, 20) i) t",
            "SELECT v, format('%s', v) FROM (SELECT chr(i)::\"char\" AS v FROM generate_series(1, 300) i) t",
            "SELECT v, format('%s', v) FROM (SELECT '2000-01-01'::date + i * 7919 AS v
               FROM generate_series(-90, 90) i) t",
            "SELECT v, format('%s', v) FROM (SELECT '2000-01-01'::timestamp + i * interval '7919 days 1.000037 s'
               AS v FROM generate_series(-90, 90) i) t",
            "SELECT v, format('%s', v) FROM (SELECT time '00:00' + i * interval '1234.567891 s' AS v
               FROM generate_series(0, 69) i) t",
        ] {
            assert_matches_postgres_text(&client, sql).await;
        }

        // Enums and domains, which tokio-postgres resolves from the catalog.
        client
            .batch_execute(
                "CREATE TYPE mood AS ENUM ('happy', 'sad');
                 CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
                 CREATE DOMAIN wallet AS money",
            )
            .await
            .unwrap();
        let custom = select_object(
            &client,
            "SELECT 'happy'::mood AS mood, ARRAY['sad'::mood, NULL] AS moods,
                    5::posint AS posint, ARRAY[6::posint] AS posints",
        )
        .await;
        assert_eq!(
            custom,
            serde_json::json!({"mood": "happy", "moods": ["sad", null], "posint": 5, "posints": [6]})
        );

        // Unsupported types are reported by column, never guessed; NULL included.
        let unsupported = query_json(
            &client,
            "SELECT 1 AS ok, '$1.00'::money AS price, '<a/>'::xml AS doc,
                    ARRAY['$1'::money] AS prices, int4range(1, 3) AS span, ROW(1, 2) AS pair,
                    point(1, 2) AS pt, B'101' AS bits, NULL::money AS no_price,
                    ARRAY['$2'::wallet] AS wallets",
        )
        .await;
        let cells = &unsupported[0];
        assert_eq!(cells[0].as_ref().unwrap(), &Value::from(1));
        for (cell, (column, type_name)) in cells[1..].iter().zip([
            ("price", "money"),
            ("doc", "xml"),
            ("prices", "_money"),
            ("span", "int4range"),
            ("pair", "record"),
            ("pt", "point"),
            ("bits", "bit"),
            ("no_price", "money"),
            ("wallets", "_wallet"),
        ]) {
            match cell {
                Err(ValueError::Unsupported {
                    column: c,
                    type_name: t,
                }) => assert_eq!((c.as_str(), t.as_str()), (column, type_name)),
                other => panic!("{column}: expected unsupported, got {other:?}"),
            }
        }
        assert_eq!(
            cells[1].as_ref().unwrap_err().to_string(),
            "column `price` has type `money`, which pgward cannot return; cast it, e.g. `price::text`"
        );

        // Values JSON would distort are reported too.
        let distorted = query_json(
            &client,
            r#"SELECT '[0:1]={1,2}'::int4[] AS shifted,
                      '{"a": 1.000000000000000000001}'::jsonb AS precise,
                      '{"a": 1.5}'::jsonb AS fine"#,
        )
        .await;
        let cells = &distorted[0];
        for (cell, column) in cells[..2].iter().zip(["shifted", "precise"]) {
            assert!(
                matches!(cell, Err(ValueError::Unrepresentable { column: c, .. }) if c == column),
                "{cell:?}"
            );
        }
        assert_eq!(cells[2].as_ref().unwrap(), &serde_json::json!({"a": 1.5}));

        // Out-of-range index is an error, not a panic.
        let row = client.query_one("SELECT 1", &[]).await.unwrap();
        assert!(matches!(
            cell_to_json(&row, 1),
            Err(ValueError::NoSuchColumn { index: 1 })
        ));
    }
}
