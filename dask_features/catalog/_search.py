"""Query catalogued experiments and unreadable files without opening any experiment file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from dask_features.catalog._connection import _CatalogConnection
from dask_features.catalog._schema import _from_json
from dask_features.errors import InvalidArgumentError
from dask_features.io.hdf5 import Experiment

_ORDER_BY = {"path", "created_at", "completed_at", "chip_id", "device_id", "test_id", "status"}


class _Searching(_CatalogConnection):
    """:meth:`Catalog.search` and :meth:`Catalog.unreadable`."""

    def search(
        self,
        *,
        chip_id: str | Sequence[str] | None = None,
        device_id: str | Sequence[str] | None = None,
        test_id: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        device_type: str | None = None,
        has_transient: bool | None = None,
        min_steps: int | None = None,
        text: str | None = None,
        order_by: str = "path",
        limit: int | None = None,
    ) -> list[Experiment]:
        """Experiments matching all given filters, rebuilt from the catalog without opening files.

        Parameters
        ----------
        chip_id, device_id, test_id, status : str or sequence of str, optional
            Exact match, or any of several values.
        device_type : {"N", "P"}, optional
            Polarity (``"N-type"``/``"P-type"`` accepted).
        has_transient : bool, optional
            Whether the experiment has transient steps.
        min_steps : int, optional
            Minimum number of steps, transfer and transient together.
        text : str, optional
            Case-insensitive substring of chip id, device id, test id, description or path.
        order_by : str, default "path"
            One of ``path``, ``created_at``, ``completed_at``, ``chip_id``, ``device_id``,
            ``test_id``, ``status``.
        limit : int, optional
            Return at most this many.

        Returns
        -------
        list of Experiment
            Paths are absolute, resolved against the catalog folder.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("chip_id", chip_id),
            ("device_id", device_id),
            ("test_id", test_id),
            ("status", status),
        ):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if device_type is not None:
            where.append("device_type = ?")
            params.append(str(device_type).strip().upper()[:1])
        if has_transient is not None:
            where.append("n_transient_steps > 0" if has_transient else "n_transient_steps = 0")
        if min_steps is not None:
            where.append("n_transfer_steps + n_transient_steps >= ?")
            params.append(int(min_steps))
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "("
                + " OR ".join(
                    f"{c} LIKE ? ESCAPE '\\'"
                    for c in ("chip_id", "device_id", "test_id", "description", "path")
                )
                + ")"
            )
            params.extend([like] * 5)
        if order_by not in _ORDER_BY:
            raise InvalidArgumentError(f"order_by must be one of {sorted(_ORDER_BY)}, got {order_by!r}")
        sql = "SELECT path, metadata FROM experiments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order_by}, path"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_from_json(self._abs(r[0]), r[1]) for r in self._conn.execute(sql, params)]

    def unreadable(self) -> pd.DataFrame:
        """Files that could not be indexed: ``path`` (absolute), ``error`` (exception type), ``reason``,
        ``file_size`` [bytes], ``scanned_at`` (UTC ISO 8601)."""
        rows = self._conn.execute(
            "SELECT path, error, reason, file_size, scanned_at FROM unreadable ORDER BY path"
        ).fetchall()
        frame = pd.DataFrame(
            [tuple(r) for r in rows], columns=["path", "error", "reason", "file_size", "scanned_at"]
        )
        frame["path"] = [self._abs(p) for p in frame["path"]]
        return frame
