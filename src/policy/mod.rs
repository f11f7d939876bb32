//! Policy: the TOML policy model, loading, the compiled matcher and decisions.
