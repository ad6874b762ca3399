#!/usr/bin/env bash
# ferrolb's layer-2 quick start, on one machine: builds ferrolb, brings up a
# 3-node lab (network namespaces on a bridge, an API server, a kube-proxy
# stand-in that answers with the node's name), runs the real controller and
# a real speaker per node, applies the MetalLB tutorial's ConfigMap and a
# Service, shows the EXTERNAL-IP, which node announces it and the client
# reaching it, then kills that node's speaker and shows the takeover and how
# long it took. The lab is torn down at the end, also on failure or Ctrl-C.
#
# Fresh Debian 12, as root:  bash e2e/demo.sh
# Nothing touches the machine's own interfaces: all traffic stays between the
# lab's namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo.sh needs root (network namespaces, raw sockets)" >&2; exit 1; }

. e2e/packages.sh
install_packages iproute2 arping curl

# Bold headings on a terminal only: no escape codes in logs and pipes.
if [ -t 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

say "building ferrolb (cargo build --workspace --bins; a few minutes on a fresh machine)"
cargo build --workspace --bins
BIN=${FERROLB_BIN_DIR:-$PWD/target/debug}

say "bringing up a 3-node lab"
up=$("$BIN/lab" up --nodes 3 --no-routers)
echo "$up"
prefix=$(sed -n 's/^lab \([^ ]*\) is up.*/\1/p' <<<"$up")
kubeconfig=$(sed -n 's/.*(kubeconfig \([^)]*\)).*/\1/p' <<<"$up")
api=$(sed -n 's/.*API server \(http[^ ]*\).*/\1/p' <<<"$up")
[ -n "$prefix" ] && [ -n "$kubeconfig" ] && [ -n "$api" ] || { echo "cannot read the lab's output" >&2; exit 1; }
logs=$(mktemp -d /tmp/ferrolb-demo.XXXXXX)
pids=()
cleanup() {
  # SIGTERM: the daemons hand over and exit cleanly.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$BIN/lab" down --prefix "$prefix" >/dev/null 2>&1 || true
  echo "lab $prefix removed; daemon logs in $logs"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$prefix-$ns" "$@"; }
# The API server listens inside the lab: talk to it from the control-plane namespace.
kapi() {
  if [ $# -ge 3 ]; then
    in_ns cp curl -sSf -X "$1" -H 'content-type: application/json' --data-binary "$3" "$api$2"
  else
    in_ns cp curl -sSf -X "$1" "$api$2"
  fi
}
node_of_mac() { case "$1" in 02:fb:04:00:00:1?) echo "node${1: -1}" ;; *) echo "unknown ($1)" ;; esac; }
ask_client() { in_ns client timeout 0.3 bash -c "cat < /dev/tcp/$1/80" 2>/dev/null || true; }

say "starting the controller and a speaker on each node"
# `ip netns exec` execs the daemon, so $! is the daemon itself.
ip netns exec "$prefix-cp" env KUBECONFIG="$kubeconfig" "$BIN/ferrolb-controller" \
  --metrics-addr 0.0.0.0:7472 >"$logs/controller.log" 2>&1 &
pids+=($!)
declare -A speaker
start_speaker() {
  ip netns exec "$prefix-$1" env KUBECONFIG="$kubeconfig" NODE_NAME="$1" "$BIN/ferrolb-speaker" \
    >"$logs/speaker-$1.log" 2>&1 &
  speaker[$1]=$!
  pids+=($!)
}
for n in node1 node2 node3; do start_speaker "$n"; done

say "applying the tutorial's ConfigMap"
cat manifests/example-config.yaml
kapi POST /api/v1/namespaces/metallb-system/configmaps \
  '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config","namespace":"metallb-system"},"data":{"config":"address-pools:\n- name: my-ip-space\n  protocol: layer2\n  addresses:\n  - 192.168.5.5-192.168.5.9\n"}}' >/dev/null

say "creating Service default/nginx (type LoadBalancer, port 80) with an endpoint on every node"
kapi POST /api/v1/namespaces/default/services \
  '{"apiVersion":"v1","kind":"Service","metadata":{"name":"nginx","namespace":"default"},"spec":{"type":"LoadBalancer","selector":{"app":"nginx"},"ports":[{"port":80,"protocol":"TCP"}]}}' >/dev/null
kapi POST /apis/discovery.k8s.io/v1/namespaces/default/endpointslices \
  '{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"nginx-1","namespace":"default","labels":{"kubernetes.io/service-name":"nginx"}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.1.10"],"nodeName":"node1"},{"addresses":["10.244.2.10"],"nodeName":"node2"},{"addresses":["10.244.3.10"],"nodeName":"node3"}],"ports":[{"port":80,"protocol":"TCP"}]}' >/dev/null

ip=""
for _ in $(seq 1 100); do
  ip=$(kapi GET /api/v1/namespaces/default/services/nginx | grep -o '"ingress":\[{"ip":"[^"]*"' | sed 's/.*"ip":"//; s/"$//' || true)
  [ -n "$ip" ] && break
  sleep 0.1
done
[ -n "$ip" ] || { echo "no EXTERNAL-IP after 10 s; see $logs/controller.log" >&2; exit 1; }
echo "NAME    TYPE           EXTERNAL-IP     PORT(S)"
echo "nginx   LoadBalancer   $ip   80/TCP"

say "who announces $ip (arping from the client on the LAN)"
mac=""
for _ in $(seq 1 50); do
  mac=$(in_ns client arping -i eth0 -c 1 -w 1 "$ip" 2>/dev/null | sed -n 's/.* from \([0-9a-f:]*\) .*/\1/p' | head -1 || true)
  [ -n "$mac" ] && break
  sleep 0.2
done
[ -n "$mac" ] || { echo "nobody answers ARP for $ip; see $logs/speaker-*.log" >&2; exit 1; }
leader=$(node_of_mac "$mac")
echo "$ip is at $mac: $leader"
kapi GET /apis/events.k8s.io/v1/namespaces/default/events |
  grep -o 'announcing from node [^,]*with protocol [^,]*' | sed 's/\\"/"/g; s/"$//' | sed 's/^/Event nodeAssigned: /' || true

say "the client connects to http://$ip:80"
echo "answered by: $(ask_client "$ip")"
in_ns client ip neigh show "$ip"

say "killing the speaker on $leader (SIGKILL, like a crash)"
kill -9 "${speaker[$leader]}"
t0=$(now_ms)
wait "${speaker[$leader]}" 2>/dev/null || true
new=""
while [ $(( $(now_ms) - t0 )) -lt 10000 ]; do
  answer=$(ask_client "$ip")
  if [ -n "$answer" ] && [ "$answer" != "$leader" ]; then new=$answer; break; fi
  sleep 0.02
done
t1=$(now_ms)
[ -n "$new" ] || { echo "no takeover within 10 s" >&2; exit 1; }
echo "$new took over $ip after $(( t1 - t0 )) ms (from the kill to the first TCP answer from $new)"
in_ns client ip neigh show "$ip"

say "restarting the speaker on $leader: the address goes back to it (the election is deterministic)"
start_speaker "$leader"
back=""
for _ in $(seq 1 100); do
  back=$(ask_client "$ip")
  [ "$back" = "$leader" ] && break
  sleep 0.1
done
echo "answered by: ${back:-nobody}"

say "done; tearing the lab down"
