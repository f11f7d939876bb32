//! Bearer extraction, the JWS header checks and the claim checks on untrusted bytes: an error
//! or a pass, never a panic. The input is the Authorization header's value; a second header,
//! when the input holds a newline, exercises the two-header refusal.
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use scopegate_core::auth::AuthSettings;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(2) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, value);
        }
    }
    // The default allow-list (RS256, ES256) and limits, as a deployment starts with.
    let settings = AuthSettings::new(
        "https://idp.example.com",
        vec!["https://mcp.example.com/mcp".into()],
    );
    let _ = scopegate_core::auth::fuzz_unverified(&headers, &settings);
});
