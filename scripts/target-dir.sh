# Sourced by the test and benchmark scripts: where cargo puts what it builds.
#
#   cargo_target_dir [PROJECT_DIR]   prints the target directory of the cargo
#                                    project at PROJECT_DIR (default: the
#                                    current one), as `cargo metadata` reports
#                                    it: CARGO_TARGET_DIR, .cargo/config.toml
#                                    or <project>/target, made absolute.
#   gopxe_bin PROFILE                prints <target dir>/PROFILE/gopxe of the
#                                    gopxe project (PROFILE: debug | release).
#   gopxe_log_dir NAME               creates and prints <target dir>/test-logs/NAME,
#                                    where a test script keeps the logs it
#                                    leaves for a look after the run.
#
# A script that runs a binary takes GOPXE_BIN (or STORM_BIN) first and falls
# back on these, so the suite works wherever the target directory is.

_gopxe_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

cargo_target_dir() {
    (cd "${1:-.}" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
}

gopxe_bin() {
    printf '%s/%s/gopxe\n' "$(cargo_target_dir "$_gopxe_root")" "$1"
}

gopxe_log_dir() {
    local d
    d="$(cargo_target_dir "$_gopxe_root")/test-logs/$1"
    mkdir -p "$d"
    printf '%s\n' "$d"
}
