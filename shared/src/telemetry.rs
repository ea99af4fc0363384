//! Logging: JSON lines inside Lambda (CloudWatch), compact text locally. Level from
//! `RUST_LOG` (default `info`). Call once at cold start.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if in_lambda {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
