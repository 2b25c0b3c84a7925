"""An agent typing into a file while editors do: the Python API client, one fs.splice per character.

Run by clients/js/test/editor.test.mjs alongside two EditorDocuments: ``js_agent.py HOME PATH TEXT``
appends TEXT to the end of PATH one character at a time, each splice at the heads of the read it
was computed from (``base``), so concurrent edits cannot move it. Exits 0 once all are in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from node.api_client import ApiClient


def main(home: Path, path: str, text: str) -> None:
    with ApiClient.connect(home / "api.sock", (home / "api.token").read_text()) as api:
        for character in text:
            read = api.call("fs.read", path=path)
            api.call("fs.splice", path=path, position=len(read["text"]), insert=character, base=read["heads"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
