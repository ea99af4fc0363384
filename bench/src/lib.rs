//! The parts of the benchmark that tests drive too: the faults section (its history
//! generator and checker), run by `farmops-bench --only faults` and by `tests/faults.rs`.

pub mod faults;
