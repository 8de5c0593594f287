//! Model-checked tests of the cancel tree and of arming the timer (run with
//! `RUSTFLAGS="--cfg loom"`).

mod loom_timer;
mod loom_tree;
