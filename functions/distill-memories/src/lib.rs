//! distill-memories: on an EventBridge schedule, distils idle conversations into farm memories
//! (see `farmops::memory::distill`). The event carries nothing the job needs; it is parsed so a
//! wrong trigger fails loudly instead of running the job.

use aws_lambda_events::eventbridge::EventBridgeEvent;
pub use farmops::memory::distill::DistillState as State;
use farmops::memory::distill::{self, DistillOutcome};
use lambda_runtime::LambdaEvent;

/// One scheduled invocation: one pass of the job, its summary returned (and logged).
pub async fn handle(
    state: &State,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<DistillOutcome, farmops::Error> {
    tracing::info!(
        source = %event.payload.source,
        detail_type = %event.payload.detail_type,
        time = ?event.payload.time,
        "scheduled event received"
    );
    // boxed: the job future is deep enough to overflow the layout computation of main
    Box::pin(distill::run_once(state)).await
}
