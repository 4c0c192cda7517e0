# syntax=docker/dockerfile:1
# Serin's image: a static (musl) binary on distroless, run as a non-root user.
#   docker build -t ghcr.io/serin-dev/serin:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --profile dist --locked --target x86_64-unknown-linux-musl \
    && rm -rf src
COPY src src
# The ArgoCD Lua scripts are compiled into `serin argocd-cm`.
COPY deploy/argocd deploy/argocd
COPY charts/serin/files charts/serin/files
RUN touch src/main.rs src/lib.rs \
    && cargo build --profile dist --locked --target x86_64-unknown-linux-musl --bin serin \
    && cp target/x86_64-unknown-linux-musl/dist/serin /serin

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /serin /usr/local/bin/serin
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["controller"]
