//! Violations the SQL check reports. Codes are stable: the model reads them to fix its query
//! and the audit log records them.

use serde::Serialize;

/// A stable reason code. Documented in README.md ("Refusal codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    SqlTooLong,
    ParseError,
    EmptyStatement,
    MultipleStatements,
    NotSelect,
    SelectInto,
    LockingClause,
    DataModifying,
    TableNotAllowed,
    ThreePartName,
    ColumnNotAllowed,
    AmbiguousColumn,
    WholeRowReference,
    FunctionNotAllowed,
    TableFunctionNotAllowed,
    RedactedColumnUse,
    NonConstantLimit,
    NaturalJoin,
    TypeNotAllowed,
    OperatorNotAllowed,
    PlaceholderNotAllowed,
    IdentifierTooLong,
    UnsupportedSyntax,
}

impl Code {
    /// The code as written in results, audit events and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::SqlTooLong => "sql_too_long",
            Code::ParseError => "parse_error",
            Code::EmptyStatement => "empty_statement",
            Code::MultipleStatements => "multiple_statements",
            Code::NotSelect => "not_select",
            Code::SelectInto => "select_into",
            Code::LockingClause => "locking_clause",
            Code::DataModifying => "data_modifying",
            Code::TableNotAllowed => "table_not_allowed",
            Code::ThreePartName => "three_part_name",
            Code::ColumnNotAllowed => "column_not_allowed",
            Code::AmbiguousColumn => "ambiguous_column",
            Code::WholeRowReference => "whole_row_reference",
            Code::FunctionNotAllowed => "function_not_allowed",
            Code::TableFunctionNotAllowed => "table_function_not_allowed",
            Code::RedactedColumnUse => "redacted_column_use",
            Code::NonConstantLimit => "non_constant_limit",
            Code::NaturalJoin => "natural_join",
            Code::TypeNotAllowed => "type_not_allowed",
            Code::OperatorNotAllowed => "operator_not_allowed",
            Code::PlaceholderNotAllowed => "placeholder_not_allowed",
            Code::IdentifierTooLong => "identifier_too_long",
            Code::UnsupportedSyntax => "unsupported_syntax",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a query was refused, with a message the model can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub code: Code,
    pub message: String,
}

impl Violation {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
