"""Each licence option gives a bake the licence's full text, with the author and the year where the text has them."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from support import RUNTIME_DIR, bake

# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte (also Debian's common-licenses copy)
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
APACHE_PLACEHOLDER = "   Copyright [yyyy] [name of copyright owner]\n"
OWNER = {"author_name": "Acme Payments Ltd", "copyright_year": "2031"}


def test_mit_is_the_full_text_with_the_year_and_the_author(tmp_path: Path) -> None:
    text = (bake(tmp_path, license="MIT", **OWNER) / "LICENSE").read_text()
    heading, copyright_line, body = text.split("\n\n", 2)
    assert heading == "MIT License"
    assert copyright_line == "Copyright (c) 2031 Acme Payments Ltd"
    # the runtime's own LICENSE is the MIT text kept apart from the template: the bodies are the same words
    assert body == RUNTIME_DIR.joinpath("LICENSE").read_text().split("\n\n", 2)[2]
    assert text.endswith("OTHER DEALINGS IN THE\nSOFTWARE.\n") and len(text) > 1000


def test_apache_2_0_is_the_full_text_with_the_appendix_filled_in(tmp_path: Path) -> None:
    text = (bake(tmp_path, license="Apache-2.0", **OWNER) / "LICENSE").read_text()
    owner_line = "   Copyright 2031 Acme Payments Ltd\n"
    assert text.count(owner_line) == 1
    # with the appendix's placeholder put back, it is the licence as the ASF publishes it
    original = text.replace(owner_line, APACHE_PLACEHOLDER)
    assert hashlib.sha256(original.encode()).hexdigest() == APACHE_2_0_SHA256
    assert len(text) > 11_000 and "END OF TERMS AND CONDITIONS" in text
    assert text.rstrip().endswith("limitations under the License.")


def test_proprietary_names_the_owner_and_the_year(tmp_path: Path) -> None:
    text = (bake(tmp_path, license="Proprietary", **OWNER) / "LICENSE").read_text()
    assert text.startswith("Copyright (c) 2031 Acme Payments Ltd. All rights reserved.\n")
    assert "No licence is granted" in text


@pytest.mark.parametrize(("choice", "expression"), [("MIT", "MIT"), ("Apache-2.0", "Apache-2.0"),
                                                     ("Proprietary", "LicenseRef-Proprietary")])
def test_the_year_defaults_to_the_year_of_the_bake_and_pyproject_names_the_licence(
    tmp_path: Path, choice: str, expression: str
) -> None:
    project = bake(tmp_path, license=choice)
    year = str(datetime.datetime.now(datetime.UTC).year)
    assert f"Copyright (c) {year} Platform Team" in (project / "LICENSE").read_text() or (
        f"Copyright {year} Platform Team" in (project / "LICENSE").read_text())
    assert f'license = "{expression}"' in (project / "pyproject.toml").read_text()
