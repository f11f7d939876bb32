# scopegate's sidecar image: the proxy alone (no demo), on distroless, as a non-root user.
#
#   docker build -t registry.example.com/platform/scopegate:0.1.0 --build-arg VERSION=0.1.0 .
#
# .ci/deploy.sh lints this file and replays the build stage's steps, so they cannot rot unseen.

# Build stage: the Rust toolchain, on the same Debian release as the runtime image (glibc).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, against an empty crate: this layer is rebuilt only when the manifest or the
# lockfile change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
# The manifest names the benchmark and example targets; cargo reads them even when not building them.
COPY benches ./benches
COPY bench/upstream.rs bench/sse_client.rs ./bench/
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && rm -rf src
COPY src ./src
COPY policies ./policies
# touch: the sources are older than the empty crate's build, and cargo compares times.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --no-default-features

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
