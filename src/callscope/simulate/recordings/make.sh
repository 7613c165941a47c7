#!/usr/bin/env bash
# Speak every recording of manifest.json with espeak-ng and convert it with sox to 8 kHz mono
# 16-bit PCM WAV. Run once by hand (Debian: apt-get install espeak-ng sox); the WAVs are
# committed, so nothing needs these tools at test or run time.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import json, subprocess, tempfile, pathlib
manifest = json.loads(pathlib.Path("manifest.json").read_text())
for item in manifest["recordings"]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as spoken:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", spoken.name, item["text"]], check=True)
        subprocess.run(["sox", spoken.name, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", item["file"]], check=True)
    print(item["file"])
PY
