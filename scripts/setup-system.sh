#!/usr/bin/env bash
# Installs the system packages conf and its tests use: FFmpeg (interop peer), PortAudio (sound devices),
# PulseAudio (a sound server for headless audio), Xvfb and xdotool (virtual screens and input), Tk (a text
# field on a virtual screen for the remote-control tests), iproute2 and iptables (network namespaces for
# NAT and loss tests), tcpdump (captures proving links are encrypted), coturn (a TURN server checking the
# web service's TURN credentials), a C compiler with Python's and OpenSSL's headers (the rtp:// server's
# compiled fan-out: sendmmsg and SRTP AES-GCM; libsodium for the zmq:// server's CURVE fan-out, see
# setup.py). Installs only what is missing.
# With --browser it also installs Chromium, which the web page's tests drive headless (large, so only
# `make test` asks for it).
set -euo pipefail

PACKAGES=(ffmpeg libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins xvfb xdotool x11-utils
          x11-xserver-utils python3-tk iproute2 iptables tcpdump coturn gcc libc6-dev python3-dev libssl-dev
          libsodium-dev)
# Prometheus (Debian's server) scrapes a real `conf server --metrics-port` in the metrics tests.
PACKAGES+=(prometheus)
# nginx with its RTMP module receives `conf record --rtmp` in the live-out tests.
PACKAGES+=(nginx-light libnginx-mod-rtmp)
# Redis and NATS (JetStream) are the directories of `conf server --cluster`: the cluster tests and
# benchmarks/cluster.py start them on free ports (conf_cli/testing/directories.py).
PACKAGES+=(redis-server nats-server)
if [ "${1:-}" = "--browser" ]; then
  PACKAGES+=(chromium)
  # node and npm fetch the WHIP/WHEP client library the browser tests run in Chromium (any node with npm
  # will do: one from another source may provide npm without Debian's package).
  command -v npm >/dev/null || PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "conf set-up: please install these system packages with your package manager: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "conf set-up: installing system packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
