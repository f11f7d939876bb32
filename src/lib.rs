#![forbid(unsafe_code)]
//! The `scopegate` binary's own code: the `demo` subcommand's scenarios and walkthrough. The proxy
//! is `scopegate_core`, the adapter `scopegate_adapter`; `main.rs` wires the subcommands.

#[cfg(feature = "demo")]
pub mod demo;
