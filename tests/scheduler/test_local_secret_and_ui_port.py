"""local[N] with the app's own secret, and spark.ui.port=0, behave as in Spark."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler import SparkConf, SparkContext


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    yield


def test_a_secret_in_the_apps_conf_reaches_its_local_executor(no_secret_env: None) -> None:
    """It was refused by its own driver: 'no authentication token'."""
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("local-secret")
        .set("spark.authenticate.secret", "app-only-secret")
        .set("spark.ui.enabled", "false")
    )
    with SparkContext(conf=conf) as sc:
        pairs = sc.parallelize(range(10), 2).map(lambda x: (x % 2, x))
        assert sorted(pairs.reduceByKey(lambda a, b: a + b).collect()) == [(0, 20), (1, 25)]


def test_ui_port_zero_takes_any_free_port() -> None:
    """It took 4040 (`or 4040`), where Spark binds an ephemeral port."""
    conf = SparkConf().setMaster("local[1]").setAppName("ui-port").set("spark.ui.port", "0")
    with SparkContext(conf=conf) as sc:
        url = sc.uiWebUrl
        assert url is not None
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        assert port not in (0, 4040)
