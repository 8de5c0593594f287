//! `rate.*` and `ticker.*` workloads (issue 4).

use crate::harness::Cfg;

/// Runs the selected `rate.*` and `ticker.*` workloads.
pub(crate) fn run(_cfg: &Cfg) {}
