"""Bring the shared top-level parts into the bake; nothing here may differ between runs (cruft diffs it)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, r"{{ repo_root }}/template/hooks")

from shared_parts import bring_shared_parts  # noqa: E402

options = json.loads(r"""{{ cookiecutter | jsonify }}""")
bring_shared_parts(Path(r"{{ repo_root }}"), Path.cwd(), options)
