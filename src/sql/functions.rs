//! The default function allowlist and the functions no config may allow.

/// Functions a model may call by default: aggregates, window functions, math, string,
/// date/time, JSON and array accessors, conditionals. Names are resolved in `pg_catalog`.
pub const DEFAULT_FUNCTIONS: &[&str] = &[
    // aggregates
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
    "every", "bit_and", "bit_or", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop",
    "var_samp", "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_count",
    "regr_r2", "regr_avgx", "regr_avgy", "percentile_cont", "percentile_disc", "mode",
    "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // math
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "power", "pow",
    "exp", "ln", "log", "log10", "mod", "div", "pi", "degrees", "radians", "sin", "cos", "tan",
    "asin", "acos", "atan", "atan2", "width_bucket", "random", "gcd", "lcm", "scale",
    // conditionals
    "coalesce", "nullif", "greatest", "least",
    // strings
    "length", "char_length", "character_length", "octet_length", "bit_length", "lower", "upper",
    "initcap", "btrim", "ltrim", "rtrim", "substr", "left", "right", "replace", "reverse",
    "concat", "concat_ws", "format", "strpos", "split_part", "starts_with", "regexp_replace",
    "regexp_match", "regexp_matches", "regexp_like", "regexp_count", "regexp_split_to_array",
    "string_to_array", "array_to_string", "translate", "md5", "to_char", "to_number", "chr",
    "ascii", "to_hex", "quote_ident", "quote_literal",
    // date and time
    "now", "current_date", "current_timestamp", "localtimestamp", "localtime", "current_time",
    "clock_timestamp", "statement_timestamp", "transaction_timestamp", "date_trunc",
    "date_part", "age", "make_date", "make_time", "make_timestamp", "make_timestamptz",
    "make_interval", "to_timestamp", "to_date", "date_bin", "justify_days", "justify_hours",
    "justify_interval", "isfinite",
    // json
    "to_json", "to_jsonb", "json_build_object", "jsonb_build_object", "json_build_array",
    "jsonb_build_array", "json_extract_path", "json_extract_path_text", "jsonb_extract_path",
    "jsonb_extract_path_text", "json_array_length", "jsonb_array_length", "json_typeof",
    "jsonb_typeof", "json_object_keys", "jsonb_object_keys", "json_array_elements",
    "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text",
    "jsonb_strip_nulls", "json_strip_nulls", "jsonb_pretty", "jsonb_path_exists",
    "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
    // arrays
    "array_length", "cardinality", "array_position", "array_positions", "array_remove",
    "array_append", "array_prepend", "array_cat", "array_upper", "array_lower", "unnest",
    "array_ndims", "generate_series",
    // misc
    "pg_typeof", "num_nulls", "num_nonnulls",
];

/// Functions no config may add to the allowlist: they read files, sleep, change settings,
/// take locks, touch large objects or sequences, open connections, signal backends, reveal
/// settings, or take SQL as text.
pub const DENIED_FUNCTIONS: &[&str] = &[
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_read_file", "pg_read_binary_file",
    "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir",
    "pg_ls_archive_statusdir", "lo_import", "lo_export", "lo_open", "lo_get", "lo_put",
    "lo_create", "lo_creat", "lo_unlink", "lo_from_bytea", "loread", "lowrite", "nextval",
    "setval", "currval", "lastval", "set_config", "current_setting", "pg_advisory_lock",
    "pg_advisory_xact_lock", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
    "pg_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_all", "dblink",
    "dblink_exec", "dblink_connect", "dblink_open", "dblink_send_query", "query_to_xml",
    "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml", "table_to_xml",
    "database_to_xml", "schema_to_xml", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_notify", "txid_current", "pg_current_xact_id",
    "pg_switch_wal", "pg_create_restore_point", "pg_promote", "pg_logical_emit_message",
    "pg_file_write", "pg_catalog.pg_sleep", "repeat", "lpad", "rpad", "pg_get_viewdef",
    "pg_get_functiondef", "pg_get_expr", "has_table_privilege", "has_column_privilege",
    "to_regclass", "xpath", "pg_stat_get_activity", "version", "inet_server_addr",
    "inet_client_addr", "current_user", "session_user", "current_database", "current_schema",
    "current_schemas",
];
