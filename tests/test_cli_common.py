"""The root command's own options."""
from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

import stemsplit
from stemsplit.cli import app


def test_version_prints_the_package_version_and_exits():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"stemsplit {stemsplit.__version__}"


def test_the_distribution_carries_the_same_version_under_its_own_name():
    # the distribution is stemsplit-audio ("stemsplit" on the package index is another project);
    # its version comes from stemsplit.__version__, so the two never disagree
    assert version("stemsplit-audio") == stemsplit.__version__
