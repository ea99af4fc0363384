//! Logging: JSON lines under a Lambda runtime (CloudWatch, and `cargo lambda watch`: see
//! [`crate::aws::LambdaHost`]), compact text otherwise. Level from
//! `RUST_LOG` (default `info`). Call once at cold start.
//!
//! In Lambda every line carries the whole span stack (`spans`): the runtime's invocation span
//! (`requestId`, `xrayTraceId`) and ours (`farm_id`, `run_id`, ...), not only the innermost.

use tracing_subscriber::{fmt::MakeWriter, util::SubscriberInitExt};

fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// The Lambda (JSON) subscriber, writing to `writer`.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .without_time()
        .with_writer(writer)
        .finish()
}

pub fn init() {
    let _ = if crate::aws::LambdaHost::from_env().is_lambda_runtime() {
        json_subscriber(std::io::stdout)
            .try_init()
            .map_err(|e| e.to_string())
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_target(false)
            .compact()
            .try_init()
            .map_err(|e| e.to_string())
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_carries_the_request_id_and_our_farm_and_run_ids() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = super::json_subscriber(move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            // what lambda_runtime opens around each invocation, then a domain span inside it
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-123");
            let _a = invoke.enter();
            let domain = tracing::info_span!("settle_run", farm_id = "farm-1", run_id = "run-9");
            let _b = domain.enter();
            tracing::info!(charged = 3, "settled");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["fields"]["message"], "settled");
        assert_eq!(line["spans"][0]["requestId"], "req-123", "{line}");
        assert_eq!(line["spans"][1]["farm_id"], "farm-1");
        assert_eq!(line["span"]["run_id"], "run-9");
    }
}
