//! loom models of the pools (run by `.ci/run`'s loom step).
