//! `ctx.*` workloads.

use crate::harness::Cfg;

/// Runs the selected `ctx.*` workloads.
pub(crate) fn run(_cfg: &Cfg) {}
