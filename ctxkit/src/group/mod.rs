//! errgroup-style fan-out with first-error cancellation (issue 3: in progress).
