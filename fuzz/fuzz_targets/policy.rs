//! The policy parser: any text is a policy or a load error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::parse(text, "fuzz.toml");
    }
});
