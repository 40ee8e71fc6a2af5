#!/usr/bin/env bash
# Installs the system packages the tests use (real Redis, real promtool and Alertmanager, real
# Chromium) when missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)  # redis-cli --cluster create (tests/state/ha.py)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
# systemd-analyze checks the exported units; systemd-notify speaks sd_notify in the supervision tests
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if ((${#need[@]})); then
  echo "installing system packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages may start services; tests start their own on free ports.
  for svc in redis-server prometheus prometheus-alertmanager postgresql; do
    "${sudo_cmd[@]}" service "$svc" stop >/dev/null 2>&1 || true
  done
fi
