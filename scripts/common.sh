# Shared by scripts/run, scripts/test and bench/run. Sourced, not run.
set -euo pipefail

FLOWTOP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Packages to build and run flowtop.
FLOWTOP_BUILD_PACKAGES=(g++ cmake make pkg-config libnetfilter-conntrack-dev libmnl-dev
  libmaxminddb-dev libncurses-dev libc-ares-dev)
# Packages to build the Debian package (scripts/package): dpkg-shlibdeps computes Depends,
# file and strip are what CPack's DEB generator calls.
FLOWTOP_PACKAGE_PACKAGES=(dpkg-dev file binutils)
# Packages for the GeoIP databases that scripts/run installs (from npm).
FLOWTOP_GEOIP_PACKAGES=(npm)
# More for the tests: GoogleTest, a JSON parser, and the real tools the tests drive.
FLOWTOP_TEST_PACKAGES=(libgtest-dev nlohmann-json3-dev conntrack nftables iproute2 socat tmux nmap hping3
  dnsmasq-base iputils-ping procps python3 kmod libcap2-bin util-linux prometheus nfdump curl
  mmdebstrap lintian "${FLOWTOP_PACKAGE_PACKAGES[@]}")
# The checks beside the tests: libFuzzer needs clang and its runtime (scripts/fuzz); scripts/lint
# runs clang-tidy and clang-format (Debian 12: all version 14).
FLOWTOP_FUZZ_PACKAGES=(clang libclang-rt-14-dev python3)
FLOWTOP_LINT_PACKAGES=(clang-tidy clang-format)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs whichever of the named Debian packages are missing; runs apt-get update once.
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "flowtop: installing ${missing[*]}" >&2
  if [ -z "${FLOWTOP_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    export FLOWTOP_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

# CMake arguments that cache compiler output when ccache is installed (rebuilds in seconds).
ccache_args() {
  if command -v ccache >/dev/null; then echo "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
}

# configure_and_build BUILD_DIR CMAKE_ARGS...
configure_and_build() {
  local dir="$1"
  shift
  cmake -S "$FLOWTOP_ROOT" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)"
}
