//! scopegate's benchmarks. The criterion micro-benchmarks are in `benches/`, the load
//! benchmark's upstream and SSE client in `examples/` (built by `bench/run.sh`); this library
//! is empty on purpose: nothing here is part of the product.
