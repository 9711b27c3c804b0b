"""Figures in words for people: plurals and durations (the CLI and the web UI)."""

from __future__ import annotations


def plural(n: int | float, word: str, words: str | None = None, *, sep: bool = True) -> str:
    """``plural(1, "result")`` -> "1 result", ``plural(1060, "host")`` -> "1,060 hosts"."""
    form = word if n == 1 else (words or word + "s")
    count = f"{n:,}" if isinstance(n, int) else f"{n:,.1f}"
    return f"{count} {form}" if sep else form


def duration(seconds: float) -> str:
    """158.6 -> "2 min 39 s"; 93784 -> "1 d 2 h"; the two largest units, rounded."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    parts = []
    for name, size in units:
        if s >= size or parts:
            parts.append(f"{s // size} {name}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0 ")) or "0 s"


def size(n: int | float) -> str:
    """Bytes for people: 999 -> "999 B", 1536 -> "1.5 KiB", 5242880 -> "5.0 MiB"."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
