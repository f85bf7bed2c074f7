"""Reject bad options before cookiecutter writes anything (it removes the partial output on exit 1)."""

import json
import sys

sys.path.insert(0, r"{{ repo_root }}/template/hooks")

from bake_options import problems_with  # noqa: E402

options = json.loads(r"""{{ cookiecutter | jsonify }}""")
problems = problems_with(options)
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
