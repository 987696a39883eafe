"""Arrays of rows on disk that a process reads a few rows at a time.

Feature caches and the orthogonal activations of datasets larger than memory live in
such files; see :class:`Rows` for why they are read with positioned I/O, not mapped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xferlab.errors import UserError


class Rows:
    """The rows of a ``.npy`` array on disk, read and written with positioned I/O
    (``os.pread``/``os.pwrite``).

    Why not a memory map: pages of a map that a batch touched (or that a writer filled)
    stay mapped and count as the process's memory until the map is dropped, so an epoch
    over a map of the whole dataset grows the process to the dataset's size. A positioned
    read copies only the rows asked for; the kernel's page cache still keeps what fits in
    RAM, and the file stays a plain ``.npy`` (``np.load`` reads it).
    """

    @classmethod
    def create(cls, path: Path, shape: tuple[int, ...], dtype: Any) -> "Rows":
        """A new ``.npy`` file of ``shape`` (zero-filled, sparse) to fill with :meth:`write`."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": tuple(int(n) for n in shape)}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            f.truncate(f.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        return cls(path, writable=True)

    def __init__(self, path: Path, writable: bool = False) -> None:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            self.shape, fortran, self.dtype = header[version](f)
            self.offset = f.tell()
        if fortran or len(self.shape) < 1:
            raise UserError(f"{path} is not a C-ordered array of rows: delete the feature cache folder")
        self.path, self.row_bytes = path, int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.writable, self._fd = writable, None

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getstate__(self) -> dict:  # a DataLoader worker opens its own descriptor
        return {**self.__dict__, "_fd": None}

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR if self.writable else os.O_RDONLY)
        return self._fd

    def _read(self, first: int, n: int) -> np.ndarray:
        """Rows first..first+n-1, read straight into a new array (one copy: disk to array)."""
        out = np.empty((n, *self.shape[1:]), self.dtype)
        got = os.preadv(self._descriptor(), [memoryview(out).cast("B")], self.offset + first * self.row_bytes)
        if got != out.nbytes:
            raise UserError(f"{self.path} is shorter than its header says: delete the cache folder it is in")
        return out

    def write(self, first: int, rows: np.ndarray) -> None:
        """Rows ``first``.. of the file set to ``rows`` (same row shape and dtype)."""
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        if data.shape[1:] != tuple(self.shape[1:]) or first + len(data) > len(self):
            raise ValueError(f"rows {data.shape} at {first} do not fit {self.shape}")
        os.pwrite(self._descriptor(), data.tobytes(), self.offset + first * self.row_bytes)

    def __getitem__(self, index: Any) -> np.ndarray:
        """Rows by int, slice (one read) or an array of ints (one read per run of
        consecutive rows)."""
        if isinstance(index, (int, np.integer)):
            return self._read(range(len(self))[index], 1)[0]
        if isinstance(index, slice):
            first, stop, step = index.indices(len(self))
            rows = self._read(first, max(0, stop - first))
            return rows if step == 1 else rows[::step]
        wanted = np.asarray(index, dtype=np.int64).reshape(-1) % max(len(self), 1)
        out = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        order = np.argsort(wanted, kind="stable")
        runs = np.split(order, np.flatnonzero(np.diff(wanted[order]) != 1) + 1)
        for run in runs:
            if len(run):
                out[run] = self._read(int(wanted[run[0]]), len(run))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def close(self) -> None:
        """Close the file descriptor (reopened by the next read)."""
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    __del__ = close


def available_memory() -> int:
    """Bytes this process can still take: the machine's available memory, or what its memory
    cgroup (v1 or v2) leaves below its limit when that is less. What a cache kept in memory
    must fit in, so that a capped process spills to disk instead of being killed."""
    avail = _meminfo_available()
    for limit, usage in _cgroup_files():
        try:
            cap = Path(limit).read_text().strip()
            if cap.isdigit():
                avail = min(avail, int(cap) - int(Path(usage).read_text().strip()))
        except OSError:
            continue
    return max(0, avail)


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # not Linux: no known bound


def _cgroup_files() -> list[tuple[str, str]]:
    """(limit file, usage file) of this process's memory cgroup(s), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            out.append((str(base / "memory.max"), str(base / "memory.current")))
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            out.append((str(base / "memory.limit_in_bytes"), str(base / "memory.usage_in_bytes")))
    return out
