"""A throwaway PostgreSQL cluster for the test suite, built with kgmigrate's own LocalCluster."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from kgmigrate.postgres.localdb import LocalCluster

_counter = itertools.count()


def make_cluster(prefix: str = "kgpg-") -> LocalCluster:
    """Create and start a fast (fsync off) cluster in a fresh folder under /tmp.

    /tmp because the server runs as `postgres` when we are root and must reach the folder;
    pytest's tmp_path lives under a root-only directory.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root, dbname="postgres", fast=True)
    cluster.start()
    return cluster


def destroy_cluster(cluster: LocalCluster) -> None:
    """Stop the cluster and delete its folder."""
    try:
        cluster.stop(mode="immediate")
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


def create_database(cluster: LocalCluster, prefix: str = "t") -> str:
    """Create an empty database and return its URL."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return cluster.url(name)


def drop_database(cluster: LocalCluster, url: str) -> None:
    """Drop the database behind `url`, closing its connections."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
