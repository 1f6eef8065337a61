//! The root package of the necrostack workspace. It holds no library code of its own: it
//! owns the runnable programs in `examples/`, the cross-crate tests in `tests/` and the
//! benchmarks in `benches/`. The framework itself is the `necrostack` crate.
