# Sourced by the other scripts: make sure ./.venv exists and holds this checkout's
# dependencies (re-installs when pyproject.toml changes). Honours $SONIQ_VENV.
VENV="${SONIQ_VENV:-.venv}"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON_BIN" -m venv "$VENV"
fi
STAMP="$VENV/.soniq-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "installing soniq and its dev dependencies into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
    echo "$WANT" > "$STAMP"
fi
