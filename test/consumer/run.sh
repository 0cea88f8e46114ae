#!/usr/bin/env bash
# The consumer test: installs the build into a staging root, then builds
# two small programs against the installed library the ways a C++ user
# would: pkg-config (shared, and libpop3.a) and CMake (find_package(pop3
# CONFIG): pop3::testing, pop3::pop3_static); and once more with the
# library as a Meson subproject. Runs each.
#
#   run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
out="$build/consumer-test"
rm -rf "$out"
mkdir -p "$out"

meson install -C "$build" --no-rebuild --quiet --destdir "$out/root" >"$out/install.log" 2>&1 ||
    { cat "$out/install.log"; exit 1; }
prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir_rel=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
root="$out/root$prefix"
libdir="$root/$libdir_rel"

echo "installed into $root:"
for f in include/pop3/session.hpp "$libdir_rel/libpop3.so" "$libdir_rel/libpop3.a" "$libdir_rel/pkgconfig/pop3.pc" \
         "$libdir_rel/cmake/pop3/pop3Config.cmake" bin/pop3fetch share/man/man1/pop3fetch.1; do
    [ -e "$root/$f" ] || { echo "missing: $f"; exit 1; }
    echo "  $f"
done

# pkg-config: the staging root stands in for /, as a package build's does.
export PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$out/root"
g++ -std=c++20 -o "$out/session_pc" "$src/session_app.cpp" $(pkg-config --cflags --libs pop3-testing)
LD_LIBRARY_PATH="$libdir" "$out/session_pc"
g++ -std=c++20 -o "$out/core_pc_static" "$src/core_app.cpp" $(pkg-config --cflags pop3) \
    "$libdir/libpop3.a" $(pkg-config --libs-only-l openssl) -pthread
"$out/core_pc_static"
if ldd "$out/core_pc_static" | grep -q libpop3; then echo "core_pc_static is not static"; exit 1; fi

# Meson, with the library as a subproject (compiled again, without its
# tests: the slowest of the three).
if [ -n "${POP3_CONSUMER_SKIP_SUBPROJECT:-}" ]; then
    echo "subproject build skipped (POP3_CONSUMER_SKIP_SUBPROJECT)"
else
    proj="$out/meson_project"
    cp -r "$src/meson_project" "$proj"
    cp "$src/session_app.cpp" "$src/core_app.cpp" "$out/"
    mkdir -p "$proj/subprojects"
    ln -s "$(cd "$src/../.." && pwd)" "$proj/subprojects/pop3"
    meson setup "$proj/build" "$proj" -Dbuildtype=plain -Dpop3:tests=false -Dpop3:bench=false \
        -Dpop3:examples=false >"$out/subproject.log" 2>&1 || { cat "$out/subproject.log"; exit 1; }
    ninja -C "$proj/build" session_app core_app >>"$out/subproject.log" 2>&1 || { cat "$out/subproject.log"; exit 1; }
    "$proj/build/session_app"
    "$proj/build/core_app"
fi

# CMake.
if command -v cmake >/dev/null; then
    unset PKG_CONFIG_SYSROOT_DIR
    cmake -S "$src" -B "$out/cmake" -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1 ||
        { cat "$out/cmake.log"; exit 1; }
    cmake --build "$out/cmake" >>"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
    LD_LIBRARY_PATH="$libdir" "$out/cmake/session_app"
    "$out/cmake/core_app_static"
else
    echo "cmake is not installed: the CMake half is skipped"
    exit 77
fi
echo "consumer test: ok"
