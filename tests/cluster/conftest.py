"""The module-scoped cluster fixture (see ``cluster_support``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cluster_support import Env
from sqlalchemy import create_engine, text

from assistant.testing.cluster import Cluster


@pytest.fixture(scope="module")
def cluster_env(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    schema = f"c_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    cluster = Cluster(url, tmp_path_factory.mktemp("cluster"))
    env = Env(cluster, url)
    try:
        cluster.start_chroma()
        yield env
    finally:
        cluster.close()
        env.engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
