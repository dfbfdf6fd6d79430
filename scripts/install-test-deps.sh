#!/usr/bin/env bash
# Installs the system packages the test suite and the benchmark need (real Dovecot and
# Redis, nginx with its mail module, dnsmasq serving test DNS blocklists, MaxMind's database
# writer for test GeoIP files, crowdsec, nftables, fail2ban and chromium (the console tests), all
# from Debian), without
# starting their system services: the tests and the benchmark start their own instances on
# free loopback ports in temp dirs. docker-compose only validates compose.yaml (no engine
# needed).
set -euo pipefail

packages=(dovecot-imapd dovecot-pop3d dovecot-submissiond redis-server docker-compose nginx libnginx-mod-mail dnsmasq libmaxmind-db-writer-perl crowdsec nftables fail2ban chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies present: ${packages[*]}"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

# policy-rc.d exit 101 tells invoke-rc.d not to start the packaged services
# (they would take the standard ports 143/993/110/995/587/6379).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

# crowdsec's post-install registers with CrowdSec's online API; offline that fails and leaves
# the package half-configured. A non-empty credentials file makes it skip the registration (the
# tests run their own crowdsec, never the packaged service, and never the online API).
if [[ " ${missing[*]} " == *" crowdsec "* ]]; then
  $SUDO mkdir -p /etc/crowdsec
  [ -s /etc/crowdsec/online_api_credentials.yaml ] || printf 'url: https://api.crowdsec.net/\nlogin: offline\npassword: offline\n' | $SUDO tee /etc/crowdsec/online_api_credentials.yaml >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
