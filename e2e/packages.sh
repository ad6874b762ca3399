# Sourced by e2e/demo.sh and e2e/test-all.sh: installs the Debian packages
# named as arguments that are missing, saying which, with apt's own output in
# a log file that is shown only when apt fails.
install_packages() {
  local missing=() p log
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log=$(mktemp /tmp/ferrolb-apt.XXXXXX.log)
  echo "== installing Debian packages: ${missing[*]} (apt's output: $log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "apt-get failed; the end of its output:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
  echo "   installed ${#missing[@]} packages"
}
