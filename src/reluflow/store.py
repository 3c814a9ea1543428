"""The results store: one SQLite file holding every finished run of every sweep.

One row per run, keyed by ``run_id``, the hash of the run's normalised
configuration (:func:`reluflow.sweep.normalize_config`), so writing a run twice is
a no-op and a sweep that starts again skips what is already there. Each run is
written in one transaction (its row and its arrays together), in WAL mode: a
process killed at any instant, SIGKILL included, leaves either the whole run or
nothing (a power cut may lose the last runs written, never tear one), and several processes may write to the same
file at once (SQLite serialises the writers; readers never block).

Scalars, configuration and provenance are JSON text (floats round-trip exactly,
NaN included); trajectories are one ``np.savez_compressed`` blob per run in a
table of their own, so listing a store never reads them.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._where import check_syntax, where_mask
from .errors import InputError

__all__ = ["ResultsStore", "RunRecord"]

SCHEMA_VERSION = 1
# A writer waits this long for another process's transaction before giving up.
BUSY_TIMEOUT_S = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    experiment  TEXT NOT NULL,
    version     TEXT NOT NULL,
    seed        INTEGER,
    config_hash TEXT NOT NULL,
    wall_s      REAL,
    created     TEXT NOT NULL,
    config      TEXT NOT NULL,
    results     TEXT NOT NULL,
    provenance  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS arrays (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    npz    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment);
"""

_META_COLUMNS = ("version", "seed", "config_hash", "wall_s", "created")


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One finished run, as the store holds it.

    Attributes:
        run_id: hash of the normalised configuration (the store's primary key).
        experiment: the experiment label (``config["experiment"]``).
        config: the normalised configuration (JSON-able scalars).
        results: scalar results (float, int, bool or str).
        arrays: trajectories and per-event arrays (float64 / int64 / bool).
        version: reluflow version that computed it. seed: ``config["seed"]``.
        wall_s: wall time of the whole run (data, initialisation and dynamics).
        created: ISO time (UTC) at which it finished.
        provenance: versions, host, configuration and the dynamics' own provenance.
    """

    run_id: str
    experiment: str
    config: dict[str, Any]
    results: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(repr=False)
    version: str
    seed: int | None
    wall_s: float
    created: str
    provenance: dict[str, Any] = field(repr=False)

    @property
    def config_hash(self) -> str:
        return self.run_id


def _dumps(obj: Any) -> str:
    # Python's float repr round-trips exactly; NaN/inf are written as NaN/Infinity.
    return json.dumps(obj, sort_keys=False, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def pack_arrays(arrays: Mapping[str, Any]) -> bytes:
    """Arrays → one compressed ``.npz`` blob (dtypes kept: float64 stays float64)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class ResultsStore:
    """A results store in the SQLite file ``path`` (created if missing).

    Use as a context manager, or call :meth:`close`. One store object belongs
    to one process and one thread; open the same file from as many processes
    as needed.

    Args:
        path: the database file (a real file: ``":memory:"`` is refused).
        create: create the file if it does not exist (otherwise an
            :class:`~reluflow.errors.InputError`).
    """

    def __init__(self, path: str | Path, *, create: bool = True):
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise InputError(
                f"store must be a file path (the store is a SQLite file on disk), got {path!r}"
            )
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"store {str(self.path)!r} is a directory, not a results store file")
        if not self.path.exists():
            if not create:
                raise InputError(f"no results store at {str(self.path)!r}")
            if not self.path.parent.exists():
                raise InputError(
                    f"cannot create the store {str(self.path)!r}: folder "
                    f"{str(self.path.parent)!r} does not exist"
                )
        elif self.path.stat().st_size >= 16:
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise InputError(
                        f"{str(self.path)!r} is not a results store (not a SQLite database file)"
                    )
        # isolation_level=None: no implicit transactions; each put is one explicit
        # BEGIN IMMEDIATE ... COMMIT.
        self._con = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._init_schema()
        except BaseException:
            self._con.close()
            raise

    # ------------------------------------------------------------------ setup

    def _retry_busy(self, fn: Any) -> Any:
        # Switching to WAL needs an exclusive lock and does not wait on the busy
        # handler when another process is creating the file at the same moment.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _init_schema(self) -> None:
        con = self._con
        try:
            mode = self._retry_busy(lambda: con.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{str(self.path)!r} is not a usable results store: {exc}") from None
        if mode.lower() != "wal":
            raise InputError(
                f"cannot put the store {str(self.path)!r} in WAL mode (got {mode!r}); "
                "put it on a local filesystem"
            )
        # WAL + NORMAL: a commit survives the process being killed at any instant (the
        # WAL is synced at checkpoints); only a power cut may drop the last commits,
        # and never leaves a torn run.
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")

        def create() -> None:
            con.execute("BEGIN IMMEDIATE")
            try:
                tables = {
                    r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if tables and "runs" not in tables:
                    raise InputError(
                        f"{str(self.path)!r} is a SQLite database but not a results store "
                        f"(tables: {', '.join(sorted(tables))})"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

        self._retry_busy(create)
        (version,) = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if int(version) != SCHEMA_VERSION:
            raise InputError(
                f"the store {str(self.path)!r} has schema version {version}; this reluflow "
                f"reads version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    # ------------------------------------------------------------------ writing

    def put(self, record: RunRecord | Mapping[str, Any]) -> bool:
        """Write one run in one transaction; False (and nothing written) if it is already there."""
        r = record if isinstance(record, Mapping) else record.__dict__
        row = (
            str(r["run_id"]),
            str(r["experiment"]),
            str(r["version"]),
            None if r.get("seed") is None else int(r["seed"]),
            str(r["run_id"]),
            float(r["wall_s"]),
            str(r["created"]),
            _dumps(r["config"]),
            _dumps(r["results"]),
            _dumps(r.get("provenance", {})),
        )
        blob = pack_arrays(r.get("arrays", {}))
        con = self._con

        def write() -> bool:
            con.execute("BEGIN IMMEDIATE")
            try:
                cur = con.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)", row)
                new = cur.rowcount == 1
                if new:
                    con.execute("INSERT INTO arrays VALUES (?, ?)", (row[0], blob))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return new

        return bool(self._retry_busy(write))

    # ------------------------------------------------------------------ reading

    def done_ids(self) -> set[str]:
        """The ``run_id`` of every run in the store."""
        return {r[0] for r in self._con.execute("SELECT run_id FROM runs")}

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM runs").fetchone()[0])

    def __contains__(self, run_id: object) -> bool:
        return (
            self._con.execute("SELECT 1 FROM runs WHERE run_id=?", (str(run_id),)).fetchone()
            is not None
        )

    def experiments(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT DISTINCT experiment FROM runs ORDER BY 1")]

    def frame(
        self, where: str | None = None, experiment: str | None = None, order: str = "written"
    ) -> pd.DataFrame:
        """One row per run.

        Columns: ``run_id``, ``experiment``, every configuration key, every scalar
        result, then ``version``, ``seed``, ``config_hash``, ``wall_s``, ``created``.
        Column names are unique: a result named like a configuration key (any key
        of :data:`reluflow.sweep.config.CONFIG_ORDER`, or a key of the
        configuration of a run in the store) is the column ``result_<name>``, and
        ``<name>`` is the configuration's value. So a descent run's requested
        ``steps`` is ``steps`` and the steps it took are ``result_steps``, whatever
        else the store holds.

        Args:
            where: a condition on those columns (``"n >= 64 and dynamics ==
                'limit'"``; SQL spellings ``=``, ``<>``, ``AND``/``OR``/``NOT`` too):
                the language of :mod:`reluflow._where`.
            experiment: keep only this experiment.
            order: ``"written"`` (the order the runs were written, which depends on
                which finished first) or ``"parameters"`` (by experiment, then each
                configuration key in column order, numbers by value, then seed: the
                same for every store holding the same runs).
        """
        if order not in ORDERS:
            raise InputError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        sql = "SELECT run_id, experiment, version, seed, config_hash, wall_s, created, config, results FROM runs"
        params: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            params = (str(experiment),)
        from .sweep.config import CONFIG_ORDER  # the sweep builds on the store: import late

        fetched, config_cols, result_cols = [], {}, {}
        for rid, exp, ver, seed, chash, wall, created, cfg, res in self._con.execute(
            sql + " ORDER BY rowid", params
        ):
            cfg, res = json.loads(cfg), json.loads(res)
            for k in cfg:
                if k not in ("experiment", "seed"):
                    config_cols.setdefault(k, None)
            fetched.append((rid, exp, ver, seed, chash, wall, created, cfg, res))
        reserved = {*CONFIG_ORDER, *config_cols, "run_id", *_META_COLUMNS}
        rows = []
        for rid, exp, ver, seed, chash, wall, created, cfg, res in fetched:
            res = {_result_column(k, reserved): v for k, v in res.items()}
            for k in res:
                result_cols.setdefault(k, None)
            rows.append(
                {
                    "run_id": rid,
                    "experiment": exp,
                    **{k: v for k, v in cfg.items() if k not in ("experiment", "seed")},
                    **res,
                    "version": ver,
                    "seed": seed,
                    "config_hash": chash,
                    "wall_s": wall,
                    "created": created,
                }
            )
        columns = ["run_id", "experiment", *config_cols, *result_cols, *_META_COLUMNS]
        df = pd.DataFrame(rows, columns=columns)
        if where and len(df):
            df = df[where_mask(df, where)]
        elif where:  # an empty store has no columns to check: the syntax at least
            check_syntax(where)
        if order == "parameters":
            df = _by_parameters(df, list(config_cols))
        return df.reset_index(drop=True)

    def _fetch(self, run_id: str) -> tuple[Any, ...]:
        row = self._con.execute(
            "SELECT run_id, experiment, version, seed, wall_s, created, config, results, "
            "provenance FROM runs WHERE run_id=?",
            (str(run_id),),
        ).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in the store {str(self.path)!r}")
        return row

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        """The arrays of one run (trajectories, events), as written."""
        row = self._con.execute("SELECT npz FROM arrays WHERE run_id=?", (str(run_id),)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in the store {str(self.path)!r}")
        return unpack_arrays(row[0])

    def record(self, run_id: str) -> RunRecord:
        """The full record of one run: configuration, results, arrays and provenance."""
        rid, exp, ver, seed, wall, created, cfg, res, prov = self._fetch(run_id)
        return RunRecord(
            run_id=rid,
            experiment=exp,
            config=json.loads(cfg),
            results=json.loads(res),
            arrays=self.arrays(rid),
            version=ver,
            seed=seed,
            wall_s=wall,
            created=created,
            provenance=json.loads(prov),
        )

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check, and every run has its arrays."""
        ok = self._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = self._con.execute(
            "SELECT count(*) FROM runs LEFT JOIN arrays USING (run_id) WHERE arrays.npz IS NULL"
        ).fetchone()[0]
        return ok and orphans == 0


# ---------------------------------------------------------------------- ordering

ORDERS = ("written", "parameters")


def _order_key(v: Any) -> tuple[int, float, str]:
    """Numbers (and booleans) by value, then strings, then missing values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (2, 0.0, "")
    if isinstance(v, bool | int | float | np.bool_ | np.integer | np.floating):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def _result_column(name: str, reserved: set[str]) -> str:
    """The frame's column of the result ``name``: ``result_<name>`` if a configuration key or
    bookkeeping column has that name (prefixed again if that is taken too)."""
    while name in reserved:
        name = f"result_{name}"
    return name


def _by_parameters(df: pd.DataFrame, config_cols: list[str]) -> pd.DataFrame:
    """Rows sorted by experiment, then each configuration key in column order, then seed."""
    keys = ["experiment", *config_cols, "seed", "run_id"]
    cols = [df[k].tolist() for k in keys]
    order = sorted(range(len(df)), key=lambda i: tuple(_order_key(c[i]) for c in cols))
    return df.iloc[order]
