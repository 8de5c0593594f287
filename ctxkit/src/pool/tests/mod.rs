//! loom models of the pools (run by `.ci/run`'s loom step).

mod loom_map;
mod loom_workers;
