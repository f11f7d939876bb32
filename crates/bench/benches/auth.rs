//! Authentication: a token verified before (the verified-token cache), an opaque token
//! introspected before (the introspection cache), a first verification per algorithm (signature
//! and claims; the key set is already loaded, as it is after start-up), a DPoP-bound cached
//! token with a new proof, whose check is one signature verification per request, and a
//! certificate-bound cached token (RFC 8705), whose check is a comparison per request after a
//! hash per connection.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};
use jsonwebtoken::Algorithm;
use scopegate_core::auth::{
    AuthSettings, Authenticator, CertThumbprint, ClientAuth, IntrospectionSettings, RequestView,
    Secret,
};
use scopegate_testkit::certs::DevCa;
use scopegate_testkit::dpop_key::DpopKey;
use scopegate_testkit::issuer::{
    DEMO_CLIENT_SECRET, INTROSPECTION_CLIENT, Issuer, IssuerConfig, IssuerHandle, KeyChoice,
};
use serde_json::json;

const AUDIENCE: &str = "https://mcp.bench.example/mcp";

fn token(issuer: &IssuerHandle, alg: Algorithm, alg_name: &str) -> HeaderMap {
    let key = issuer
        .key(&KeyChoice::Alg(alg))
        .expect("issuer publishes the algorithm");
    let claims = issuer.claims_for("bench-agent", &["customer:read", "ticket:create"]);
    let token = issuer.mint_with(
        json!({"alg": alg_name, "typ": "at+jwt", "kid": key.kid}),
        claims,
        KeyChoice::Alg(alg),
    );
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    headers
}

fn authenticators(issuer: &IssuerHandle) -> (Authenticator, Authenticator) {
    let mut settings = AuthSettings::new(issuer.issuer(), vec![AUDIENCE.to_owned()]);
    settings.jwks_uri = Some(issuer.jwks_uri().to_owned());
    settings.algorithms = vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
    let client = scopegate_core::client::build(None, Duration::from_secs(5)).unwrap();
    let cached = Authenticator::new(settings.clone(), client.clone());
    let uncached = Authenticator::with_token_cache(settings, client, 0);
    (cached, uncached)
}

fn auth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt
        .block_on(Issuer::start(IssuerConfig::demo(AUDIENCE)))
        .unwrap();
    let (cached, uncached) = authenticators(&issuer);
    rt.block_on(async {
        cached.refresh_keys().await.unwrap();
        uncached.refresh_keys().await.unwrap();
    });

    let rs256 = token(&issuer, Algorithm::RS256, "RS256");
    rt.block_on(cached.authenticate(&rs256)).unwrap();
    c.bench_function("auth/cached_token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached.authenticate(black_box(&rs256)).await.unwrap()) })
    });

    let mut group = c.benchmark_group("auth/first_verification");
    for (alg, name) in [
        (Algorithm::RS256, "RS256"),
        (Algorithm::ES256, "ES256"),
        (Algorithm::EdDSA, "EdDSA"),
    ] {
        let headers = token(&issuer, alg, name);
        rt.block_on(uncached.authenticate(&headers)).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(uncached.authenticate(black_box(&headers)).await.unwrap())
            })
        });
    }
    group.finish();
    issuer.shutdown();
}

const HTU: &str = "https://mcp.bench.example/mcp";

/// The request as the proxy sees it: a POST to [`HTU`].
fn view(headers: &HeaderMap) -> RequestView<'_> {
    RequestView {
        headers,
        method: &Method::POST,
        scheme: "https",
        authority: Some("mcp.bench.example"),
        path: "/mcp",
        resource: AUDIENCE,
        client_cert: None,
    }
}

/// A cached opaque token (one introspection call at warm-up), then a cached JWT bound to a DPoP
/// key with a fresh proof per request (the proof is signed outside the measured time).
fn sender_constrained(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt
        .block_on(Issuer::start(IssuerConfig::demo(AUDIENCE)))
        .unwrap();
    let mut settings = AuthSettings::new(issuer.issuer(), vec![AUDIENCE.to_owned()]);
    settings.jwks_uri = Some(issuer.jwks_uri().to_owned());
    settings.introspection = Some(IntrospectionSettings {
        endpoint: Some(issuer.introspection_url()),
        client_id: INTROSPECTION_CLIENT.to_owned(),
        client_secret: Secret(DEMO_CLIENT_SECRET.to_owned()),
        client_auth: ClientAuth::Basic,
        cache_ttl: Duration::from_secs(300),
    });
    let client = scopegate_core::client::build(None, Duration::from_secs(5)).unwrap();
    let auth = Authenticator::new(settings, client);
    rt.block_on(auth.refresh_keys()).unwrap();

    let opaque = issuer.mint_opaque(issuer.claims_for("bench-agent", &["customer:read"]));
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {opaque}").parse().unwrap());
    rt.block_on(auth.authenticate(&headers)).unwrap();
    c.bench_function("auth/cached_introspected_token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(auth.authenticate(black_box(&headers)).await.unwrap()) })
    });

    let key = DpopKey::generate();
    let mut claims = issuer.claims_for("bench-agent", &["customer:read"]);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = issuer.mint(claims);
    let with_proof = || {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("DPoP {token}").parse().unwrap());
        headers.insert("dpop", key.proof("POST", HTU, &token).parse().unwrap());
        headers
    };
    let warm = with_proof();
    rt.block_on(auth.attempt(&view(&warm))).result.unwrap();
    c.bench_function("auth/dpop_bound_cached_token_ES256_proof", |b| {
        b.to_async(&rt).iter_batched(
            with_proof,
            |headers| {
                let auth = &auth;
                async move {
                    black_box(auth.attempt(&view(&headers)).await.result.unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    issuer.shutdown();
}

/// The same authenticator and connection (a client certificate's thumbprint in the view), a
/// cached unbound token beside a cached token bound to that certificate: the difference is the
/// binding check a request pays. Then the thumbprint itself (SHA-256 of the certificate's DER),
/// which a connection pays once, at its handshake.
fn certificate_bound(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt
        .block_on(Issuer::start(IssuerConfig::demo(AUDIENCE)))
        .unwrap();
    let (auth, _) = authenticators(&issuer);
    rt.block_on(auth.refresh_keys()).unwrap();
    let cert = DevCa::generate()
        .and_then(|ca| ca.client_cert("bench-agent"))
        .unwrap();
    let thumbprint = CertThumbprint::of_der(&cert.der);
    let bearer = |token: String| {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    };
    let unbound = bearer(issuer.mint(issuer.claims_for("bench-agent", &["customer:read"])));
    let mut claims = issuer.claims_for("bench-agent", &["customer:read"]);
    claims["cnf"] = json!({ "x5t#S256": thumbprint.as_str() });
    let bound = bearer(issuer.mint(claims));

    let mut group = c.benchmark_group("auth/client_certificate");
    for (name, headers) in [
        ("unbound_cached_token", &unbound),
        ("bound_cached_token", &bound),
    ] {
        let view = || view(headers).with_client_cert(Some(&thumbprint));
        rt.block_on(auth.attempt(&view())).result.unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(auth.attempt(black_box(&view())).await.result.unwrap())
            })
        });
    }
    group.bench_function("thumbprint_per_connection", |b| {
        b.iter(|| black_box(CertThumbprint::of_der(black_box(&cert.der))))
    });
    group.finish();
    issuer.shutdown();
}

criterion_group!(benches, auth, sender_constrained, certificate_bound);
criterion_main!(benches);
