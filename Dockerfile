# Small static images of both daemons (musl, FROM scratch).
#   docker build --target controller -t ferrolb/controller:0.1.0 .
#   docker build --target speaker -t ferrolb/speaker:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p ferrolb-controller -p ferrolb-speaker --bins

FROM scratch AS controller
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ferrolb-controller /ferrolb-controller
USER 65534:65534
EXPOSE 7472
ENTRYPOINT ["/ferrolb-controller"]

FROM scratch AS speaker
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ferrolb-speaker /ferrolb-speaker
EXPOSE 7472
ENTRYPOINT ["/ferrolb-speaker"]
