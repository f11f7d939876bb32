//! Bearer token extraction (RFC 6750 §2.1): exactly one `Authorization: Bearer <token>` header,
//! whose token has the shape of a compact JWS. Owns only the header's syntax; what the token says
//! is `jwt.rs`'s business. Tokens are never read from the query string or the body (RFC 6750 §2.2
//! and §2.3 are optional, and URLs end up in logs).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthError;

const SCHEME: &[u8] = b"bearer";
const DPOP_SCHEME: &[u8] = b"dpop";

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Bearer,
    /// RFC 9449: the token comes with a `DPoP` proof header.
    Dpop,
}

/// The scheme and the token's bytes from the request's single `Authorization` header, its form
/// not yet checked: a token the cache holds was checked when it was first verified, and the
/// cache compares it byte for byte, so a repeat caller skips [`compact_jws`].
pub(super) fn token_bytes(
    headers: &HeaderMap,
    max_token_bytes: usize,
) -> Result<(Scheme, &[u8]), AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    // Two headers could be read differently by us and by the upstream; refuse rather than pick.
    if values.next().is_some() {
        return Err(AuthError::MultipleAuthorization);
    }
    let bytes = value.as_bytes();
    let has = |scheme: &[u8]| {
        bytes.len() > scheme.len()
            && bytes[..scheme.len()].eq_ignore_ascii_case(scheme)
            && bytes[scheme.len()] == b' '
    };
    let (scheme, scheme_len) = if has(SCHEME) {
        (Scheme::Bearer, SCHEME.len())
    } else if has(DPOP_SCHEME) {
        (Scheme::Dpop, DPOP_SCHEME.len())
    } else {
        if bytes.eq_ignore_ascii_case(SCHEME) || bytes.eq_ignore_ascii_case(DPOP_SCHEME) {
            return Err(AuthError::malformed("empty bearer token"));
        }
        return Err(AuthError::malformed(
            "authorization scheme must be Bearer or DPoP",
        ));
    };
    let token = &bytes[scheme_len + 1..];
    // Size first, so an oversized value is not scanned.
    if token.len() > max_token_bytes {
        return Err(AuthError::TokenTooLarge {
            limit: max_token_bytes,
        });
    }
    if token.is_empty() {
        return Err(AuthError::malformed("empty bearer token"));
    }
    Ok((scheme, token))
}

/// The token as text, once it has the shape of a compact JWS.
pub(super) fn compact_jws(token: &[u8]) -> Result<&str, AuthError> {
    check_compact_jws(token)?;
    // Only ASCII passed the check above, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| AuthError::malformed("token is not a compact JWS"))
}

/// Whether the token has the shape of a compact JWS: a JWT to verify, rather than an opaque
/// token to introspect.
pub(super) fn is_compact_jws(token: &[u8]) -> bool {
    check_compact_jws(token).is_ok()
}

/// An opaque token as RFC 6750 §2.1 spells one (`b64token`): letters, digits and `-._~+/`,
/// then optional `=` padding. Checked before the token is sent anywhere.
pub(super) fn check_b64token(token: &[u8]) -> Result<(), AuthError> {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    let (body, _padding) = token.split_at(body_len);
    let ok = !body.is_empty()
        && body.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if ok {
        Ok(())
    } else {
        Err(AuthError::malformed(
            "token is neither a compact JWS nor an RFC 6750 b64token",
        ))
    }
}

/// Three non-empty base64url segments separated by two dots. JWE (five segments), unsecured JWTs
/// (empty signature) and anything with padding or whitespace are refused here.
fn check_compact_jws(token: &[u8]) -> Result<(), AuthError> {
    let mut dots = 0;
    let mut segment_len = 0;
    for &b in token {
        match b {
            b'.' => {
                if segment_len == 0 {
                    return Err(AuthError::malformed("token has an empty segment"));
                }
                dots += 1;
                segment_len = 0;
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => segment_len += 1,
            _ => {
                return Err(AuthError::malformed(
                    "token has characters outside base64url",
                ));
            }
        }
    }
    if dots != 2 {
        return Err(AuthError::malformed(
            "token is not a compact JWS (three segments)",
        ));
    }
    if segment_len == 0 {
        return Err(AuthError::malformed("token has an empty segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

    fn one(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn extract(headers: &HeaderMap, max_token_bytes: usize) -> Result<&str, AuthError> {
        compact_jws(token_bytes(headers, max_token_bytes)?.1)
    }

    fn reason(value: &str) -> &'static str {
        extract(&one(value), 8192).unwrap_err().reason().as_str()
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                extract(&one(&format!("{scheme} {TOKEN}")), 8192).unwrap(),
                TOKEN
            );
        }
    }

    #[test]
    fn no_header_is_missing_token_and_not_presented() {
        let err = extract(&HeaderMap::new(), 8192).unwrap_err();
        assert_eq!(err, AuthError::MissingToken);
        assert!(!err.token_presented());
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let mut h = one(&format!("Bearer {TOKEN}"));
        h.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        assert_eq!(
            extract(&h, 8192).unwrap_err(),
            AuthError::MultipleAuthorization
        );
    }

    #[test]
    fn other_schemes_and_bad_spacing_are_malformed() {
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer  eyJ.eyJ.sig",
            "Bearer\teyJ.eyJ.sig",
            "BearerX eyJ.eyJ.sig",
            "eyJ.eyJ.sig",
        ] {
            assert_eq!(reason(value), "malformed", "{value:?}");
        }
    }

    #[test]
    fn token_must_be_three_non_empty_base64url_segments() {
        for token in [
            "abc",
            "a.b",
            "a.b.c.d.e",
            "a..c",
            ".b.c",
            "a.b.",
            "a.b.c=",
            "a+b.c.d",
            "a/b.c.d",
            "a.b.c ",
            "a.b.c,x",
        ] {
            assert_eq!(reason(&format!("Bearer {token}")), "malformed", "{token:?}");
        }
    }

    #[test]
    fn token_longer_than_limit_is_too_large() {
        let err = extract(&one(&format!("Bearer {TOKEN}")), TOKEN.len() - 1).unwrap_err();
        assert_eq!(
            err,
            AuthError::TokenTooLarge {
                limit: TOKEN.len() - 1
            }
        );
        assert!(extract(&one(&format!("Bearer {TOKEN}")), TOKEN.len()).is_ok());
    }

    #[test]
    fn descriptions_never_echo_the_token() {
        let err = extract(&one("Bearer secret.part!.x"), 8192).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
