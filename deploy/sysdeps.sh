#!/usr/bin/env bash
# Install the Debian packages Spillway needs, but only those that are missing.
# Usage: deploy/sysdeps.sh [wrk] [test]
#   wrk:  wrk and ab, for `make bench`
#   test: libfaketime (a web host with a skewed clock), promtool (from Debian's prometheus package:
#         it checks deploy/prometheus-alerts.yml) and nftables (the multi-host tests' partitions), for `make test`
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
need=()
have mariadbd || need+=(mariadb-server)
have mariadb || need+=(mariadb-client)
have redis-server || need+=(redis-server)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
for extra in "$@"; do
  case "$extra" in
    wrk) have wrk || need+=(wrk); have ab || need+=(apache2-utils) ;;
    test) have faketime || need+=(faketime); have promtool || need+=(prometheus); have nft || need+=(nftables) ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "Installing ${need[*]} with apt-get (once)..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
