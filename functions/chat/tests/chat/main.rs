//! chat function tests: real API Gateway events, real PostgreSQL, the offline model, and the
//! real Bedrock SDK client against a local stub speaking the Converse wire format.

mod bad_input;
mod bedrock_stub;
mod budgets;
mod clinical;
mod clinical_writes;
mod concurrency;
mod faults;
mod holds;
mod offline_turns;
mod openapi;
mod removed_mid_turn;
mod support;
