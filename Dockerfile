# syntax=docker/dockerfile:1
#
# The sagaflow coordinator as a small, non-root image.
#
#   docker build -t sagaflow:0.1.0 .
#   docker run --read-only --tmpfs /tmp -p 7070:7070 -v sagaflow-data:/var/lib/sagaflow sagaflow:0.1.0
#
# The final image runs as uid/gid 65532 (distroless "nonroot"), writes only under
# /var/lib/sagaflow (the embedded journal; mount a volume there) and /tmp (mount a tmpfs or an
# emptyDir when the root filesystem is read-only), and has no shell. Kubernetes manifests:
# deploy/kubernetes/ (docs/kubernetes.md).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- build ----------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Dependencies first: fetch the crates named in Cargo.lock into a cache mount, so a change to
# the sources does not download them again. (The cache mounts need BuildKit, the default
# builder since Docker 23.)
COPY Cargo.toml Cargo.lock ./
# SQLite's compile-time options (LIBSQLITE3_FLAGS): the image's journal syncs as the repo's does.
COPY .cargo ./.cargo
COPY crates ./crates
COPY examples ./examples
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo fetch --locked

# The build keeps its target directory in a cache mount too (incremental rebuilds of the
# workspace's own crates only), so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p sagaflow-cli --bin sagaflow \
 && install -D -m 0755 target/release/sagaflow /out/sagaflow \
 && install -d -m 0750 /out/data

# ---- runtime --------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="sagaflow" \
      org.opencontainers.image.description="Sagaflow: a durable saga orchestrator (the coordinator and its CLI)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/sagaflow" \
      org.opencontainers.image.documentation="https://example.invalid/sagaflow/docs/kubernetes.md" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/sagaflow /usr/local/bin/sagaflow
# The data directory must exist and belong to the runtime user: distroless has no shell to
# create it at run time.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/sagaflow

USER 65532:65532
WORKDIR /var/lib/sagaflow
VOLUME ["/var/lib/sagaflow"]
ENV SAGAFLOW_DATA_DIR=/var/lib/sagaflow
EXPOSE 7070

# No HEALTHCHECK: the image has no shell or curl. Probe over HTTP instead:
# GET /livez (process up, never touches the store), GET /readyz (store reachable, recovery done).
ENTRYPOINT ["/usr/local/bin/sagaflow"]
CMD ["server", "--listen", "0.0.0.0:7070", "--data-dir", "/var/lib/sagaflow"]
