# crowdledger: multi-stage image.
#   build:   docker build -t crowdledger .
#   run:     docker run -p 8080:8080 -e JWT_SECRET=... -v crowdledger-data:/data crowdledger
# Default storage is SQLite in the /data volume; set DATABASE_URL=postgres://... for PostgreSQL.

############################
# Build stage
############################
FROM rust:1.95-bookworm AS build

# diesel's "postgres" feature links against libpq. SQLite is bundled (libsqlite3-sys/bundled),
# so it only needs the C compiler that the rust image already has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# 1) Build the dependencies only, against stub sources, so this layer stays cached
#    until Cargo.toml or Cargo.lock changes. All three targets named in Cargo.toml
#    (the lib, the crowdledger bin and the loadgen bin) must exist for the manifest to load.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin/loadgen \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/loadgen/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin crowdledger \
 && rm -rf src

# 2) Build the real binary. Migrations are embedded at compile time (embed_migrations!).
#    Touch the crate roots so cargo doesn't reuse the stub build's artifacts.
COPY src ./src
COPY migrations ./migrations
RUN touch src/lib.rs src/main.rs \
 && cargo build --release --locked --bin crowdledger \
 && install -Dm755 target/release/crowdledger /out/crowdledger

############################
# Runtime stage
############################
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Non-root user with a fixed UID/GID, so volume ownership stays predictable.
RUN groupadd --system --gid 10001 crowdledger \
 && useradd --system --uid 10001 --gid crowdledger --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin crowdledger \
 && mkdir -p /data \
 && chown crowdledger:crowdledger /data

COPY --from=build /out/crowdledger /usr/local/bin/crowdledger

ENV BIND_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/crowdledger.db

# /data is created and chowned before VOLUME, so a new named volume starts owned by the
# crowdledger user. (Bind mounts keep the host's ownership; they must be writable by UID 10001.)
VOLUME ["/data"]
WORKDIR /data
USER crowdledger:crowdledger

EXPOSE 8080

ENTRYPOINT ["crowdledger"]
CMD ["serve"]
