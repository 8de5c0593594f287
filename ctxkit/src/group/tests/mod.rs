//! Model-checked tests of the group's scheduler (run with `RUSTFLAGS="--cfg loom"`).

mod loom_scheduler;
