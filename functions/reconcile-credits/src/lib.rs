//! reconcile-credits: on an EventBridge schedule, expires reservations of runs that never
//! settled and refunds them (see `farmops::reconcile`). The event carries nothing the job
//! needs; it is parsed so a wrong trigger fails loudly instead of running the job.

use aws_lambda_events::eventbridge::EventBridgeEvent;
pub use farmops::reconcile::ReconcileState as State;
use farmops::reconcile::{self, ReconcileOutcome};
use lambda_runtime::LambdaEvent;

/// One scheduled invocation: one pass of the job, its counts returned (and logged).
pub async fn handle(
    state: &State,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<ReconcileOutcome, farmops::Error> {
    tracing::info!(
        source = %event.payload.source,
        detail_type = %event.payload.detail_type,
        time = ?event.payload.time,
        "scheduled event received"
    );
    // boxed: the job future is deep enough to overflow the layout computation of main
    Box::pin(reconcile::run_once(state)).await
}
