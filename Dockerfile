# The eb-deploy action image (what action.yml's `runs.image` pulls): the release binary on distroless
# glibc + CA certificates, nothing else. Built for linux/amd64 and linux/arm64 by .github/workflows/release.yml:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/team/eb-deploy:X.Y.Z --push .
#
# The compile always runs on the build machine's own architecture (--platform=$BUILDPLATFORM) and
# cross-compiles to TARGETARCH with Debian's gcc cross toolchain: no QEMU-emulated rustc.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS builder
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src

# The C compiler, linker and libc for the target: aws-lc-sys (the AWS SDK's TLS crypto) is C built with
# the `cc` crate. The native gcc comes with the rust image; a foreign target needs Debian's cross gcc.
RUN set -eux; \
    case "$TARGETARCH" in \
        amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
        arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
        *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends $cross; \
        rm -rf /var/lib/apt/lists/*; \
        cc="$gnu-gcc"; ar="$gnu-ar"; \
    else \
        cc=gcc; ar=ar; \
    fi; \
    rustup target add "$triple"; \
    upper="$(echo "$triple" | tr 'a-z-' 'A-Z_')"; lower="$(echo "$triple" | tr '-' '_')"; \
    { \
        echo "export CARGO_BUILD_TARGET=$triple"; \
        echo "export CARGO_TARGET_${upper}_LINKER=$cc"; \
        echo "export CC_${lower}=$cc"; \
        echo "export AR_${lower}=$ar"; \
    } > /etc/cross-env; \
    cat /etc/cross-env

# Dependencies first, against stub sources: this layer is reused until Cargo.toml or Cargo.lock change.
# The workspace's member manifests are needed to resolve it (the tools under crates/ are never built here).
COPY Cargo.toml Cargo.lock ./
COPY crates/ebsim/Cargo.toml crates/ebsim/Cargo.toml
COPY crates/faultproxy/Cargo.toml crates/faultproxy/Cargo.toml
COPY crates/stackkit/Cargo.toml crates/stackkit/Cargo.toml
RUN set -eux; \
    . /etc/cross-env; \
    for dir in . crates/ebsim crates/faultproxy crates/stackkit; do \
        mkdir -p "$dir/src"; echo 'fn main() {}' > "$dir/src/main.rs"; : > "$dir/src/lib.rs"; \
    done; \
    cargo build --release --locked -p eb-deploy; \
    rm -rf src

COPY src ./src
# `touch`: COPY keeps the files' old mtimes, which would look older than the stubs' build.
RUN set -eux; \
    . /etc/cross-env; \
    touch src/main.rs src/lib.rs; \
    cargo build --release --locked -p eb-deploy; \
    cp "target/$CARGO_BUILD_TARGET/release/eb-deploy" /eb-deploy

# glibc, libgcc and CA certificates, no shell, no package manager. Root (no USER): the runner mounts
# /github/workspace and the host's Docker socket, which only root can use.
FROM gcr.io/distroless/cc-debian12

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="eb-deploy" \
      org.opencontainers.image.description="Build, push and deploy a Docker app to AWS Elastic Beanstalk in one GitHub Actions step" \
      org.opencontainers.image.source="https://github.com/team/eb-deploy" \
      org.opencontainers.image.url="https://github.com/team/eb-deploy" \
      org.opencontainers.image.documentation="https://github.com/team/eb-deploy#readme" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=builder /eb-deploy /usr/local/bin/eb-deploy
ENTRYPOINT ["/usr/local/bin/eb-deploy"]
