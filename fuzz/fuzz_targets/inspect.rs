//! JSON-RPC inspection: never panics, and accepts only what serde_json also reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::mcp::{InspectLimits, inspect};

fuzz_target!(|body: &[u8]| {
    if let Ok(inspection) = inspect(body, &InspectLimits::default()) {
        let value: serde_json::Value =
            serde_json::from_slice(body).expect("serde_json reads what the inspector accepted");
        let count = if value.is_array() {
            value.as_array().map_or(0, Vec::len)
        } else {
            1
        };
        assert_eq!(inspection.messages.len(), count);
    }
});
