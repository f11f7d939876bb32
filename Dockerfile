# Build stage: the Rust toolchain; dependencies cached in their own layer.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && rm -rf src
COPY src ./src
COPY policies ./policies
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --no-default-features

# Runtime: distroless, non-root, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="scopegate" \
      org.opencontainers.image.description="Authorization sidecar for MCP servers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/scopegate /usr/local/bin/scopegate
USER 65532:65532
EXPOSE 8443 9464
ENTRYPOINT ["scopegate"]
CMD ["run", "--config", "/etc/scopegate/config.toml"]
