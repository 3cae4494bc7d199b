//! Configuration: TOML types with documented defaults ([`types`]), loading with `${ENV}`
//! substitution ([`load`]), and validation that reports every problem at once and builds the
//! policy and tool definitions the engine runs on ([`validate`]).

pub mod load;
pub mod types;
pub mod validate;

pub use load::{ConfigError, load};
pub use types::Config;
pub use validate::{Param, ParamType, Settings, ToolDef, validate};
