//! The issuer's token endpoint: the client-credentials grant (RFC 6749 §4.4) with RFC 8707's
//! `resource`, client authentication by Basic or form, and the RFC 6749 §5.2 error answers.

use crate::serve::{BoxBody, full};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::{DemoClient, MAX_FORM_BYTES, State, unix_now};

/// A token-endpoint error (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid_client")]
    InvalidClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target")]
    InvalidTarget,
}

impl TokenError {
    pub(crate) fn into_response(self) -> Response<BoxBody> {
        let (status, code, description) = match &self {
            Self::InvalidRequest(why) => {
                (StatusCode::BAD_REQUEST, "invalid_request", (*why).into())
            }
            Self::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret".to_owned(),
            ),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported".to_owned(),
            ),
            Self::InvalidScope(scope) => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("scope not allowed for this client: {scope}"),
            ),
            Self::InvalidTarget => (
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "resource is not this issuer's audience".to_owned(),
            ),
        };
        let mut response = json_response(
            status,
            &json!({ "error": code, "error_description": description }),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 names the authentication scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"scopegate-demo\"".parse().expect("valid"),
            );
        }
        response
    }
}

pub(crate) async fn token(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, TokenError> {
    let (parts, form) = read_form(req).await?;
    let param = |name: &str| form.get(name).map(String::as_str);

    match param("grant_type") {
        None => return Err(TokenError::InvalidRequest("missing grant_type")),
        Some("client_credentials") => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
    }

    let client = authenticate_client(state, &parts.headers, &form)?;

    let scopes: Vec<String> = match param("scope").filter(|s| !s.trim().is_empty()) {
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            if let Some(excess) = requested.iter().find(|s| !client.scopes.contains(s)) {
                return Err(TokenError::InvalidScope(excess.clone()));
            }
            requested
        }
        // RFC 6749 §3.3: without a scope, the client's default, here everything it may have.
        None => client.scopes.clone(),
    };

    if let Some(resource) = param("resource")
        && resource != state.audience
    {
        return Err(TokenError::InvalidTarget);
    }

    let now = unix_now();
    let ttl = state.token_ttl.as_secs();
    let scope = scopes.join(" ");
    let mut claims = json!({
        "iss": state.issuer,
        "sub": client.id,
        "aud": state.audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": state.next_jti(),
        "client_id": client.id,
        "scope": scope,
    });
    if let Some(tenant) = &client.tenant {
        claims["tenant"] = json!(tenant);
    }
    let access_token = state.mint(&claims);
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }),
    );
    // RFC 6749 §5.1: token responses must not be cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    headers.insert(header::PRAGMA, "no-cache".parse().expect("valid"));
    Ok(response)
}

/// A form-encoded request body (token and introspection requests), size-bounded.
pub(crate) async fn read_form(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, HashMap<String, String>), TokenError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(TokenError::InvalidRequest(
            "body must be application/x-www-form-urlencoded",
        ));
    }
    let body: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| TokenError::InvalidRequest("unreadable or oversized body"))?
        .to_bytes();
    let body =
        std::str::from_utf8(&body).map_err(|_| TokenError::InvalidRequest("body is not UTF-8"))?;
    Ok((parts, parse_form(body)?))
}

/// Finds the client by HTTP Basic (RFC 6749 §2.3.1) or by `client_id`/`client_secret` form fields,
/// and checks its secret. Using both methods at once is an error.
pub(crate) fn authenticate_client<'a>(
    state: &'a State,
    headers: &http::HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'a DemoClient, TokenError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| TokenError::InvalidClient)?;
            let (scheme, encoded) = value.split_once(' ').ok_or(TokenError::InvalidClient)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(TokenError::InvalidClient);
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .map_err(|_| TokenError::InvalidClient)?;
            let decoded = String::from_utf8(decoded).map_err(|_| TokenError::InvalidClient)?;
            let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
            // Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1).
            let id = percent_decode(id).ok_or(TokenError::InvalidClient)?;
            let secret = percent_decode(secret).ok_or(TokenError::InvalidClient)?;
            Some((id, secret))
        }
    };
    let posted_secret = form.get("client_secret");
    let (id, secret) = match (basic, form.get("client_id"), posted_secret) {
        (Some(_), _, Some(_)) => {
            return Err(TokenError::InvalidRequest(
                "more than one client authentication method",
            ));
        }
        (Some((id, secret)), posted_id, None) => {
            if posted_id.is_some_and(|p| *p != id) {
                return Err(TokenError::InvalidRequest(
                    "client_id differs from Basic credentials",
                ));
            }
            (id, secret)
        }
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        (None, _, _) => return Err(TokenError::InvalidClient),
    };
    match state.clients.get(&id) {
        Some(client) if client.secret == secret => Ok(client),
        _ => Err(TokenError::InvalidClient),
    }
}

/// Parses `application/x-www-form-urlencoded`. A repeated parameter is an error (RFC 6749 §3.2).
pub(crate) fn parse_form(body: &str) -> Result<HashMap<String, String>, TokenError> {
    let mut form = HashMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name =
            percent_decode(name).ok_or(TokenError::InvalidRequest("bad percent-encoding"))?;
        let value =
            percent_decode(value).ok_or(TokenError::InvalidRequest("bad percent-encoding"))?;
        if form.insert(name, value).is_some() {
            return Err(TokenError::InvalidRequest("repeated parameter"));
        }
    }
    Ok(form)
}

/// `text` with every byte but the unreserved ones (RFC 3986 §2.3) percent-encoded: a value for
/// a form body or a query, as a client sends it to this issuer.
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` as space; `None` on a broken escape or non-UTF-8 result.
pub(crate) fn percent_decode(input: &str) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                // `from_str_radix` alone would take a sign, as in `%+f`.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body.to_string()))
        .expect("static response parts are valid")
}
