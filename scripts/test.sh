#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, including the end-to-end checks with the official
# OpenAI, Anthropic and google-genai Python SDKs (set up in a virtualenv on first use) and with the real
# Claude Code, Codex and Gemini CLIs (installed from the npm registry on first use, when node and npm exist),
# the status page in headless Chromium and the shared limits against a real redis-server (both installed from
# the distribution's packages when missing).
#
# The virtualenv lives in target/sdk-venv and is rebuilt when tests/sdk/requirements.txt or the python3
# found on PATH changes. Arguments go to `cargo test` (e.g. `./scripts/test.sh --test sdk`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/sdk-venv
requirements=tests/sdk/requirements.txt
stamp="$venv/.requirements.sha256"

python3 --version >/dev/null 2>&1 || {
    echo "scripts/test.sh: python3 is needed for the SDK tests (tests/sdk.rs)" >&2
    exit 1
}
want="$( (sha256sum "$requirements" && python3 --version 2>&1) | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "scripts/test.sh: setting up $venv from $requirements" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || {
        echo "scripts/test.sh: 'python3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$venv/bin/python" -m pip install --quiet -r "$requirements"
    # Written last, so an interrupted install is redone next time.
    echo "$want" >"$stamp"
fi

export LLM_ROUTER_SDK_PYTHON="$PWD/$venv/bin/python"
export LLM_ROUTER_REQUIRE_SDK=1

# The real CLIs' end-to-end tests: Claude Code (tests/claude_code.rs), Codex (tests/codex.rs) and the Gemini
# CLI (tests/gemini_cli.rs), each pinned by its package-lock.json and reinstalled when the lock changes.
install_cli() {
    local dir=$1 name=$2
    local installed=$dir/node_modules/.installed-package-lock.json
    if ! cmp -s "$dir/package-lock.json" "$installed"; then
        echo "scripts/test.sh: installing $name into $dir" >&2
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
        cp "$dir/package-lock.json" "$installed"
    fi
}
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    install_cli tests/claude-code "Claude Code"
    install_cli tests/codex "the Codex CLI"
    install_cli tests/gemini-cli "the Gemini CLI"
    export LLM_ROUTER_REQUIRE_CLAUDE_CODE=1 LLM_ROUTER_REQUIRE_CODEX=1 LLM_ROUTER_REQUIRE_GEMINI_CLI=1
else
    echo "scripts/test.sh: node/npm not found; the Claude Code, Codex and Gemini CLI tests will be skipped" >&2
fi

# The status page's browser test (tests/status_page.rs) runs Debian's Chromium headless, installed here
# when missing and when this user may install packages.
if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: installing chromium for the status page test" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    else
        echo "scripts/test.sh: chromium not found; the status page's browser checks will be skipped" >&2
    fi
fi
if command -v chromium >/dev/null 2>&1; then
    export LLM_ROUTER_REQUIRE_CHROMIUM=1
fi

# The shared limits and cooldowns (tests/redis.rs) run against a real redis-server on 127.0.0.1, installed
# here when missing and when this user may install packages.
if ! command -v redis-server >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: installing redis-server for the shared-limit tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }
    else
        echo "scripts/test.sh: redis-server not found; the shared-limit tests will be skipped" >&2
    fi
fi
if command -v redis-server >/dev/null 2>&1; then
    export LLM_ROUTER_REQUIRE_REDIS=1
fi

cargo test -j2 "$@"
