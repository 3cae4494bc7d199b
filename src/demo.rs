//! `pgward demo`: a throwaway PostgreSQL with the sample data, a least-privilege role, a
//! config, and stdio serving; the cluster is removed on exit.

use crate::app::AppError;

pub async fn run(_no_serve: bool) -> Result<(), AppError> {
    Err(AppError::Demo(
        "the demo is not available in this build".into(),
    ))
}
