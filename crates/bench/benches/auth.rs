//! Authentication: a token verified before (the verified-token cache), and a first verification
//! per algorithm (signature and claims; the key set is already loaded, as it is after start-up).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::Algorithm;
use scopegate_core::auth::{AuthSettings, Authenticator};
use scopegate_testkit::issuer::{Issuer, IssuerConfig, IssuerHandle, KeyChoice};
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

criterion_group!(benches, auth);
criterion_main!(benches);
