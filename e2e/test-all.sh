#!/usr/bin/env bash
# The whole ferrolb test suite, as the README's quick start gives it.
# Runs on a fresh Debian 12 machine as root: installs the Debian packages the
# lab needs (routers, probes), then checks formatting and lints, and runs every
# unit, CLI and lab test. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

. e2e/packages.sh
# kubectl: the webhook tests apply files with it, as a user does.
install_packages iproute2 bird2 frr gobgpd arping ndisc6 iputils-ping procps umoci skopeo ca-certificates kubectl
# The router daemons are only ever started by the lab, inside its namespaces.
for svc in bird frr gobgpd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
echo "== toolchain: $(cargo --version)"

# Incremental caches double the size of a one-off build; CI builds once.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | awk 'NR==2 {print "disk free for target/: " $4}'

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build (the lab runs the daemons' binaries)"
cargo build --workspace --bins --locked

echo "== tests"
cargo test --workspace --locked
