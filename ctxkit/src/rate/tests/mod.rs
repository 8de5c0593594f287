//! Model-checked tests of the limiter (run with `RUSTFLAGS="--cfg loom"`).

mod loom_limiter;
mod loom_sleepers;
