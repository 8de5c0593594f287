//! Model-checked tests of the cancel tree (run with `RUSTFLAGS="--cfg loom"`).

mod loom_tree;
