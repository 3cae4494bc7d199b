# syntax=docker/dockerfile:1
#
# pgward container image.
#
#   docker build -t pgward .
#   docker run --rm --read-only \
#     -v "$PWD/pgward.toml:/etc/pgward/pgward.toml:ro" \
#     -v pgward-audit:/var/log/pgward \
#     -e PGWARD_DB_PASSWORD -p 127.0.0.1:8080:8080 pgward
#
# What the image promises (tests/deploy.rs checks these against this file):
#   * built exactly as CI and the README build it: `cargo build --release --locked`, so the
#     image runs the dependency versions that Cargo.lock pins and CI tested;
#   * the runtime stage is distroless (no shell, no package manager, no curl) and runs as the
#     numeric non-root user 65532, so Kubernetes' runAsNonRoot can verify it;
#   * no secret is baked in: no config file, no key, no password. The config is mounted at
#     /etc/pgward/pgward.toml and every secret in it is a `${ENV_VAR}` filled from the
#     environment at start-up;
#   * it runs with a read-only root filesystem: the only path pgward writes is the audit
#     file's directory, /var/log/pgward, a volume;
#   * ports: 8080 for MCP over Streamable HTTP, 9090 for the admin listener (/healthz,
#     /readyz, /metrics). The health check below probes /healthz from inside the container,
#     so the config needs an `[admin]` section on port 9090 (loopback is enough for Docker;
#     Kubernetes probes need `listen = "0.0.0.0:9090"` and `allow_network = true`).
#
# See docs/operations.md for the volumes, the environment and the hardening checklist.

# ---------------------------------------------------------------------------------------
# Build stage. Debian bookworm, the same release as the runtime below (distroless
# debian12): pgward links glibc dynamically, and a binary built against a newer glibc than
# the runtime's does not start.
# ---------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The build context is an allowlist (.dockerignore): the sources, the lock file and the SQL
# files the binary embeds; never target/, .git or anything that could hold a secret.
COPY . .
# The same command as CI. Cargo's caches are build-time mounts, not layers.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/pgward /out/usr/local/bin/pgward \
    && install -d -m 0750 -o 65532 -g 65532 /out/var/log/pgward \
    && install -d -m 0755 /out/etc/pgward

# ---------------------------------------------------------------------------------------
# Runtime stage: glibc, libgcc, CA certificates (for JWKS URLs) and nothing else.
# Pin it by digest in production (gcr.io/distroless/cc-debian12:nonroot@sha256:...).
# ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="pgward" \
      org.opencontainers.image.description="A security-first MCP server for read-only PostgreSQL access" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/usr/local/bin/pgward /usr/local/bin/pgward
# Empty directories: the config mount point and the audit directory, owned by the runtime
# user so a fresh named volume mounted there is writable by it.
COPY --from=build /out/etc/pgward /etc/pgward
COPY --from=build --chown=65532:65532 /out/var/log/pgward /var/log/pgward
# Logs are JSON lines on stderr (audit events are JSON lines there too).
ENV PGWARD_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080 9090
VOLUME ["/var/log/pgward"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/pgward", "health", "--url", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/pgward"]
CMD ["serve", "--config", "/etc/pgward/pgward.toml"]
