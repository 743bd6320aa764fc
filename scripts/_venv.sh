# Sourced by the other scripts: make sure ./.venv exists and holds this checkout with the
# extras in $SONIQ_EXTRAS (default: dev), re-installing when pyproject.toml or the extras
# change. Honours $SONIQ_VENV.
VENV="${SONIQ_VENV:-.venv}"
EXTRAS="${SONIQ_EXTRAS:-dev}"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON_BIN" -m venv "$VENV"
fi
STAMP="$VENV/.soniq-installed"
WANT="$( (cat pyproject.toml; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "installing soniq-jobs[$EXTRAS] into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
    echo "$WANT" > "$STAMP"
fi
