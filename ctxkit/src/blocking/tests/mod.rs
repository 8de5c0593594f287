//! Model-checked tests of the after-function pool's hand-off (run with `RUSTFLAGS="--cfg loom"`).

mod loom_blocking;
