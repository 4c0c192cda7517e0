//! Metric analysis: arguments, conditions, verdicts over measurements, and metric providers.

pub mod args;
pub mod batch;
pub mod burn_rate;
pub mod compare;
pub mod condition;
pub mod counting;
pub mod dispersion;
pub mod evidence;
pub mod http;
pub mod job;
pub mod oauth2;
pub mod prometheus;
pub mod provider;
pub mod rules;
pub mod verdict;
pub mod web;
