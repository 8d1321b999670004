"""docs/configuration.md is generated from the settings registry and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli._config import ConfigError, check_values
from cli._config_doc import LAYERS, main, render
from rpcenv import ConfigEntry

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"


def test_the_reference_on_disk_is_what_the_registry_renders() -> None:
    # `make check` runs the same comparison (`make check-config-doc`).
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is out of date: run 'make config-doc'"
    )


def test_every_public_key_is_in_the_reference_under_its_layer() -> None:
    text = render()
    for section in LAYERS:
        start = text.index(f"## {section.title}")
        end = text.find("\n## ", start + 1)
        body = text[start : end if end > 0 else len(text)]
        for entry in section.entries:
            row = f"| `{entry.key}` |"
            assert (row in body) != entry.internal, entry.key


def test_check_fails_on_a_stale_file_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "configuration.md"
    copy.write_text(render().replace("`120s`", "`90s`"), encoding="utf-8")
    assert main(["--check", str(copy)]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["--write", str(copy)]) == 0
    assert main(["--check", str(copy)]) == 0
    assert main(["--check", str(tmp_path / "missing.md")]) == 1


def test_the_cli_accepts_every_default_and_checks_every_layer() -> None:
    defaults = {
        e.key: e.default
        for section in LAYERS
        for e in section.entries
        if isinstance(e, ConfigEntry) and isinstance(e.default, str)
    }
    check_values(defaults, "--conf")  # no error: every default reads as its entry
    for key, bad in (
        ("spark.rpc.keepalive.interval", "0"),  # rpcenv
        ("spark.deploy.retainedDrivers", "-1"),  # cluster
        ("spark.ui.port", "70000"),  # scheduler
    ):
        with pytest.raises(ConfigError, match=f"^{key}: expected .*, not '{bad}'$") as info:
            check_values({key: bad}, "--properties-file")
        assert info.value.source == "--properties-file"
