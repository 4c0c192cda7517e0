//! Metric analysis: arguments, conditions, verdicts over measurements, and metric providers.

pub mod args;
pub mod condition;
pub mod prometheus;
pub mod provider;
pub mod verdict;
