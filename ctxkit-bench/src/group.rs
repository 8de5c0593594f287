//! `group.*` workloads (issue 3).

use crate::harness::Cfg;

/// Runs the selected `group.*` workloads.
pub(crate) fn run(_cfg: &Cfg) {}
