"""Compose's units to Kubernetes': bytes, CPUs and durations.

The trap this module exists for: Compose's "512m" is 512 MiB (Docker reads byte
sizes with binary multiples and a lowercase "m" means mega), while Kubernetes'
"512m" is 0.512 bytes. Everything goes through a plain number first.
"""

from __future__ import annotations

import math
import re

# go-units RAMInBytes, what Docker and Compose use: binary multiples, "b"/"ib" optional.
_BYTES = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", re.IGNORECASE)
_MULTIPLIER = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# Go's time.ParseDuration, which Compose uses: "1m30s", "1.5h", "500ms".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class UnitError(ValueError):
    pass


def parse_bytes(value: object) -> int:
    """512m, "1g", "256M", 1048576, "536870912" (Compose v2 prints bytes) -> bytes."""
    if isinstance(value, bool):
        raise UnitError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    match = _BYTES.fullmatch(str(value))
    if not match:
        raise UnitError(f"not a size: {value!r}")
    return int(float(match[1]) * _MULTIPLIER[match[2].lower()])


def memory_quantity(n_bytes: int) -> str:
    """Bytes as the largest exact binary Kubernetes unit: 536870912 -> "512Mi"."""
    for suffix, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n_bytes and n_bytes % size == 0:
            return f"{n_bytes // size}{suffix}"
    return str(n_bytes)


def parse_cpus(value: object) -> float:
    """0.5, "0.5", "1.25" -> CPUs (Compose's `cpus`, a CFS quota in whole CPUs)."""
    if isinstance(value, bool):
        raise UnitError(f"not a CPU count: {value!r}")
    try:
        cpus = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnitError(f"not a CPU count: {value!r}") from None
    if cpus < 0 or math.isnan(cpus) or math.isinf(cpus):
        raise UnitError(f"not a CPU count: {value!r}")
    return cpus


def cpu_quantity(cpus: float) -> str:
    """CPUs as a Kubernetes quantity: 0.5 -> "500m", 2.0 -> "2" (1m is the floor)."""
    millis = max(1, round(cpus * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def parse_duration(value: object) -> float:
    """"1m30s", "10s", "500ms" -> seconds. A bare number is taken as seconds."""
    if isinstance(value, bool):
        raise UnitError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UnitError(f"not a duration: {value!r}")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def whole_seconds(seconds: float, minimum: int = 1) -> int:
    """Kubernetes counts probes and grace periods in whole seconds: round up, so a
    500ms timeout becomes 1 s rather than 0 (which the API server refuses)."""
    return max(minimum, math.ceil(seconds - 1e-9))
