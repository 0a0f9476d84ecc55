"""Log lines in the formats the real programs print (the verifier greps these, so the shapes matter)."""

import datetime
import json


def emit(line: str) -> None:
    # stdout is line-buffered (see __main__), so the kubelet sees every line as it is written.
    print(line, flush=True)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def vllm(level: str, source: str, message: str) -> None:
    """vLLM's logger: `INFO 08-24 18:09:51 [loggers.py:122] message`."""
    emit(f"{level} {_now():%m-%d %H:%M:%S} [{source}] {message}")


def uvicorn(message: str) -> None:
    """uvicorn's own lines (vLLM serves through uvicorn): `INFO:     message`."""
    emit(f"INFO:     {message}")


def klog(severity: str, source: str, message: str, **values) -> None:
    """Go klog text format with structured values, as the routing sidecar prints it:
    `E0824 16:49:51.115884       1 proxy.go:268] "msg" err="..." logger="proxy server"`."""
    stamp = _now()
    pairs = "".join(f" {key}={value if isinstance(value, int) else json.dumps(str(value))}"
                    for key, value in values.items())
    emit(f"{severity[0]}{stamp:%m%d %H:%M:%S.%f} {1:>7} {source}] {json.dumps(message)}{pairs}")


def zap(level: str, caller: str, message: str, **values) -> None:
    """controller-runtime's zap JSON lines, as the EPP prints them."""
    record = {"level": level, "ts": _now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
              "caller": caller, "msg": message}
    record.update(values)
    emit(json.dumps(record))
