"""The results file: every measurement merged in as it finishes, so that parts run in separate
sessions add up to one file."""

import json
from pathlib import Path

from .commands import say


class Results:
    """The results file: read, updated one measurement at a time, written back atomically."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        self.data = {}
        if path.exists():
            self.data = json.loads(path.read_text())
            if self.data.get("mode") != mode:
                say(f"{path} holds {self.data.get('mode')} results; starting a fresh {mode} file")
                self.data = {}
        self.data["mode"] = mode

    def set(self, *keys_and_value):
        *keys, last, value = keys_and_value
        node = self.data
        for key in keys:
            node = node.setdefault(key, {})
        node[last] = value
        self.save()

    def get(self, *keys, default=None):
        node = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)
