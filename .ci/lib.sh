# Shared by the quick-start scripts. Sourced, not run.

# The Debian 12 packages the build, the tests, the bench and the demo need.
POP3_PACKAGES="g++ clang libclang-rt-14-dev meson ninja-build pkg-config cmake python3
  libboost1.81-dev libssl-dev openssl doctest-dev"

# Installs whatever of POP3_PACKAGES is missing: as root directly, otherwise
# through sudo. Does nothing (and needs no root) when all are present.
ensure_packages() {
    missing=""
    for p in $POP3_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "Installing:$missing"
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: missing packages ($missing) and neither root nor sudo to install them" >&2
        exit 2
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

# meson setup that also works on an existing build directory.
setup_build() {
    dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}
