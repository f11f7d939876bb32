# scopegate's sidecar image: the proxy alone (no demo), on distroless, as a non-root user.
#
#   docker build -t registry.example.com/platform/scopegate:0.1.0 --build-arg VERSION=0.1.0 .
#
# .ci/deploy.sh lints this file and replays the build stage's steps, so they cannot rot unseen.

# Build stage: the Rust toolchain, on the same Debian release as the runtime image (glibc).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# A failing command inside a pipe fails its RUN step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Dependencies first, against empty crates: this layer is rebuilt only when a manifest or the
# lockfile change, not on every source edit. Cargo reads every workspace member's manifest, and
# the benchmark targets the bench manifest names (each `[[bench]]`'s `name` on the line after it),
# even when building one package, so those come as manifests and empty files. Only the proxy's own
# sources follow, and only the `scopegate` package is built, without the adapter and the demo.
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml ./crates/core/
COPY crates/adapter/Cargo.toml ./crates/adapter/
COPY crates/testkit/Cargo.toml ./crates/testkit/
COPY crates/bench/Cargo.toml ./crates/bench/
RUN mkdir -p src crates/core/src crates/adapter/src crates/testkit/src crates/bench/src crates/bench/benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/core/src/lib.rs crates/adapter/src/lib.rs crates/testkit/src/lib.rs \
        crates/bench/src/lib.rs \
    && sed -n '/^\[\[bench\]\]/{n;s|^name = "\(.*\)"|crates/bench/benches/\1.rs|p}' crates/bench/Cargo.toml \
        | xargs touch \
    && cargo build --release --locked -p scopegate --no-default-features \
    && rm -rf src crates/core/src
COPY src ./src
COPY crates/core/src ./crates/core/src
COPY policies ./policies
# touch: the sources are older than the empty crates' build, and cargo compares times.
RUN touch src/main.rs src/lib.rs crates/core/src/lib.rs \
    && cargo build --release --locked -p scopegate --no-default-features

# Runtime: distroless "cc" (glibc and libgcc_s, which the binary links; CA roots; no shell, no
# package manager), its nonroot user by number so that runAsNonRoot can verify it. The root
# filesystem can be read-only: scopegate writes nothing but its logs, to stdout.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="scopegate" \
      org.opencontainers.image.description="Authorization sidecar for MCP servers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="README.md, section Deploying"
COPY --from=build /src/target/release/scopegate /usr/local/bin/scopegate
USER 65532:65532
# 8443: the proxy (TLS); 9464: admin (/metrics, /healthz, /readyz).
EXPOSE 8443 9464
ENTRYPOINT ["scopegate"]
CMD ["run", "--config", "/etc/scopegate/config.toml"]
