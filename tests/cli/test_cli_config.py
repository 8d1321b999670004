"""Configuration precedence and parsing, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli._config import (
    ConfigError,
    Setting,
    java_opts_conf,
    load_conf,
    parse_conf_pairs,
    parse_memory_mb,
    parse_port,
    parse_positive_int,
    parse_properties,
    parse_properties_file,
    resolve,
)

CORES = Setting("--cores", "spark.worker.cores", ("SPARK_WORKER_CORES",))


def test_properties_separators_and_comments() -> None:
    text = """
# a comment
! another
spark.executor.memory   2g
spark.app.name=My App
spark.cores.max: 4
"""
    assert parse_properties(text, "f") == {
        "spark.executor.memory": "2g",
        "spark.app.name": "My App",
        "spark.cores.max": "4",
    }


def test_properties_key_alone_has_the_empty_value() -> None:
    # java.util.Properties (Spark's Utils.getPropertiesFromFile): a key alone means "".
    assert parse_properties("a b\nlonely\nspaced   \n", "f") == {
        "a": "b",
        "lonely": "",
        "spaced": "",
    }


def test_properties_line_without_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"f:2.*a key first"):
        parse_properties("a b\n= orphan\n", "f")


def test_conf_pairs() -> None:
    assert parse_conf_pairs(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_conf_pairs(["novalue"])


def test_secret_refused_on_command_line() -> None:
    with pytest.raises(ConfigError, match="SPARKCTL_SECRET"):
        parse_conf_pairs(["spark.authenticate.secret=hunter2"])


def test_java_opts() -> None:
    assert java_opts_conf("-Xmx1g -Dspark.deploy.spreadOut=false -Dfoo=1") == {
        "spark.deploy.spreadOut": "false"
    }


def test_conf_beats_file_beats_opts(tmp_path: Path) -> None:
    props = tmp_path / "p.conf"
    props.write_text("spark.executor.memory 2g\nspark.cores.max 3\n")
    env = {"SPARK_MASTER_OPTS": "-Dspark.cores.max=9 -Dspark.task.maxFailures=7"}
    conf = load_conf(["spark.executor.memory=4g"], props, env, "SPARK_MASTER_OPTS")
    assert conf["spark.executor.memory"] == "4g"
    assert conf["spark.cores.max"] == "3"
    assert conf["spark.task.maxFailures"] == "7"


def test_spark_conf_dir_defaults(tmp_path: Path) -> None:
    (tmp_path / "spark-defaults.conf").write_text("spark.executor.cores 2\n")
    conf = load_conf([], None, {"SPARK_CONF_DIR": str(tmp_path)})
    assert conf["spark.executor.cores"] == "2"


def test_properties_file_replaces_spark_defaults(tmp_path: Path) -> None:
    (tmp_path / "spark-defaults.conf").write_text("spark.executor.cores 2\n")
    props = tmp_path / "mine.conf"
    props.write_text("spark.cores.max 1\n")
    conf = load_conf([], props, {"SPARK_CONF_DIR": str(tmp_path)})
    assert "spark.executor.cores" not in conf


def test_missing_properties_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_conf([], tmp_path / "nope.conf", {})
    assert info.value.source == "--properties-file"


def test_unknown_key_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    conf = load_conf(["spark.not.a.real.key.for.test=1"], None, {})
    assert conf["spark.not.a.real.key.for.test"] == "1"
    assert "spark.not.a.real.key.for.test" in caplog.text


@pytest.mark.parametrize(
    ("flag", "conf", "env", "expected"),
    [
        (3, {"spark.worker.cores": "5"}, {"SPARK_WORKER_CORES": "7"}, 3),
        (None, {"spark.worker.cores": "5"}, {"SPARK_WORKER_CORES": "7"}, 5),
        (None, {}, {"SPARK_WORKER_CORES": "7"}, 7),
        (None, {}, {}, 11),
    ],
)
def test_precedence(
    flag: int | None, conf: dict[str, str], env: dict[str, str], expected: int
) -> None:
    from rpcenv import Conf

    assert resolve(CORES, flag, Conf(conf), env, 11, parse_positive_int) == expected


def test_bad_env_value_names_variable_and_flag() -> None:
    from rpcenv import Conf

    with pytest.raises(ConfigError, match=r"SPARK_WORKER_CORES \(for --cores\)") as info:
        resolve(CORES, None, Conf({}), {"SPARK_WORKER_CORES": "-2"}, 1, parse_positive_int)
    assert info.value.source == "--cores"


@pytest.mark.parametrize(
    ("text", "mb"), [("4g", 4096), ("512m", 512), ("512", 512), ("1.5g", 1536), ("2048k", 2)]
)
def test_memory(text: str, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["-1g", "4x", "", "abc", "100k"])
def test_bad_memory(text: str) -> None:
    with pytest.raises(ValueError):
        parse_memory_mb(text)


def test_ports_and_counts() -> None:
    assert parse_port("0") == 0
    with pytest.raises(ValueError):
        parse_port("70000")
    with pytest.raises(ValueError):
        parse_positive_int("0")


def test_properties_files_as_editors_and_java_write_them(tmp_path: Path) -> None:
    # A BOM made the first key '\ufeffspark.executor.memory' (ignored as unknown); a line
    # continued with a backslash was "expected 'key value'"; a Latin-1 file was a bare
    # UnicodeDecodeError with status 1.
    bom = tmp_path / "bom.conf"
    bom.write_bytes(b"\xef\xbb\xbfspark.executor.memory 2g\r\nspark.app.name crlf\r\n")
    assert parse_properties_file(bom) == {"spark.executor.memory": "2g", "spark.app.name": "crlf"}
    text = "spark.driver.extraJavaOptions=-Da=1 \\\n    -Db=2\n# comment \\\nspark.x 1\\\\\nlast \\"
    assert parse_properties(text, "t") == {
        "spark.driver.extraJavaOptions": "-Da=1 -Db=2",
        "spark.x": "1\\\\",
        "last": "",
    }
    latin = tmp_path / "latin.conf"
    latin.write_bytes(b"spark.app.name caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        parse_properties_file(latin)
