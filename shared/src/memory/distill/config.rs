//! The job's configuration from the environment (`FARMOPS_DISTILL_*`), validated.

use std::time::Duration;

use crate::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq)]
pub struct DistillConfig {
    pub idle: Duration,
    pub batch: u32,
    /// Cosine similarity (1 - cosine distance) at or above which a fact is a near-duplicate.
    pub duplicate_similarity: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            idle: Duration::from_secs(1800),
            batch: 50,
            duplicate_similarity: 0.92,
        }
    }
}

impl DistillConfig {
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_lookup(|v| std::env::var(v).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        let env = Env(lookup);
        let d = DistillConfig::default();
        let batch: u32 = env.parsed("FARMOPS_DISTILL_BATCH", d.batch)?;
        if !(1..=500).contains(&batch) {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DISTILL_BATCH",
                reason: format!("{batch}: must be 1 to 500"),
            });
        }
        let sim: f64 = env.parsed(
            "FARMOPS_DISTILL_DUPLICATE_SIMILARITY",
            d.duplicate_similarity,
        )?;
        if !(sim > 0.0 && sim <= 1.0) {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DISTILL_DUPLICATE_SIMILARITY",
                reason: format!("{sim}: must be in (0, 1]"),
            });
        }
        Ok(DistillConfig {
            idle: Duration::from_secs(env.parsed("FARMOPS_DISTILL_IDLE_SECS", 1800u64)?),
            batch,
            duplicate_similarity: sim,
        })
    }
}
