//! Binding lookup-tool arguments (JSON values, already validated against the tool's schema) to
//! the parameter types PostgreSQL inferred for the statement. A parameter type pgward cannot
//! bind is reported at start-up, with the fix: an explicit cast in the tool's SQL
//! (`$1::text::uuid`).

use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};

use crate::config::ParamType;

/// Whether a declared JSON type can bind to the PostgreSQL type inferred for it.
pub fn compatible(kind: ParamType, ty: &Type) -> bool {
    match kind {
        ParamType::Integer => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8),
        ParamType::Number => matches!(*ty, Type::FLOAT4 | Type::FLOAT8),
        ParamType::Boolean => *ty == Type::BOOL,
        ParamType::String => matches!(
            *ty,
            Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::DATE
                | Type::TIMESTAMP
                | Type::TIMESTAMPTZ
                | Type::JSON
                | Type::JSONB
        ),
    }
}

/// Converts a claim of the caller (always text) for a row filter's column of type `ty`: text
/// types as they are, integer types parsed. Other column types are refused (filter on a text
/// or integer tenant column).
pub fn bind_claim(
    claim: &str,
    value: &str,
    ty: &Type,
) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    let bad = || {
        format!(
            "the caller's `{claim}` claim cannot be compared with a `{}` column",
            ty.name()
        )
    };
    Ok(match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Box::new(value.to_string()),
        Type::INT2 => Box::new(value.parse::<i16>().map_err(|_| bad())?),
        Type::INT4 => Box::new(value.parse::<i32>().map_err(|_| bad())?),
        Type::INT8 => Box::new(value.parse::<i64>().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

/// Converts one argument to a value the driver binds as `ty`.
pub fn bind(name: &str, value: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    let bad = || format!("parameter `{name}` cannot be converted to `{}`", ty.name());
    if value.is_null() {
        return Ok(Box::new(Option::<String>::None));
    }
    Ok(match *ty {
        Type::INT2 => Box::new(
            value
                .as_i64()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Type::INT4 => Box::new(
            value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Type::INT8 => Box::new(value.as_i64().ok_or_else(bad)?),
        Type::FLOAT4 => Box::new(value.as_f64().ok_or_else(bad)? as f32),
        Type::FLOAT8 => Box::new(value.as_f64().ok_or_else(bad)?),
        Type::BOOL => Box::new(value.as_bool().ok_or_else(bad)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            Box::new(value.as_str().ok_or_else(bad)?.to_string())
        }
        Type::DATE => Box::new(
            chrono::NaiveDate::parse_from_str(value.as_str().ok_or_else(bad)?, "%Y-%m-%d")
                .map_err(|_| format!("parameter `{name}` must be a date like 2024-01-31"))?,
        ),
        Type::TIMESTAMP => Box::new(
            chrono::NaiveDateTime::parse_from_str(
                value.as_str().ok_or_else(bad)?,
                "%Y-%m-%dT%H:%M:%S%.f",
            )
            .map_err(|_| {
                format!("parameter `{name}` must be a timestamp like 2024-01-31T12:00:00")
            })?,
        ),
        Type::TIMESTAMPTZ => Box::new(
            chrono::DateTime::parse_from_rfc3339(value.as_str().ok_or_else(bad)?)
                .map_err(|_| {
                    format!(
                        "parameter `{name}` must be an RFC 3339 timestamp like 2024-01-31T12:00:00Z"
                    )
                })?
                .with_timezone(&chrono::Utc),
        ),
        Type::JSON | Type::JSONB => {
            let text = value.as_str().ok_or_else(bad)?;
            let parsed: Value = serde_json::from_str(text)
                .map_err(|_| format!("parameter `{name}` is not JSON"))?;
            Box::new(parsed)
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_ranges_are_checked() {
        assert!(bind("n", &json!(5), &Type::INT4).is_ok());
        assert_eq!(
            bind("n", &json!(1i64 << 40), &Type::INT4).err().unwrap(),
            "parameter `n` cannot be converted to `int4`"
        );
        assert!(bind("n", &json!("5"), &Type::INT8).is_err());
    }

    #[test]
    fn compatibility_follows_declared_type() {
        assert!(compatible(ParamType::Integer, &Type::INT8));
        assert!(!compatible(ParamType::Integer, &Type::TEXT));
        assert!(compatible(ParamType::String, &Type::TIMESTAMPTZ));
        assert!(!compatible(ParamType::String, &Type::UUID));
    }

    #[test]
    fn dates_must_parse() {
        assert!(bind("d", &json!("2024-01-31"), &Type::DATE).is_ok());
        assert!(bind("d", &json!("yesterday"), &Type::DATE).is_err());
    }
}
