"""Load on a PostgreSQL label store: N annotator processes labeling at once.

    python benchmarks/bench_pg_load.py [--annotators 2 4 8] [--seconds 60]
        [--postgres-url postgresql://user@host/admin_db] [--out benchmarks/results/pg-load.txt]

Without ``--postgres-url`` a throwaway server is started from Debian's binaries (as in the
tests). For each N, a fresh database gets a team queue of ``--items`` items; N processes
(each its own interpreter, store and connection) then claim ``--batch`` items at a time and
label them, as fast as they can, for ``--seconds`` seconds. There is no think time, so this
is the store's ceiling, not a human pace.

Reported per N: labels/s (labels whose ``add_label`` returned), the median / p95 / max
latency of ``add_label`` and of ``claim``, store errors, and the audit of the store
afterwards:

lost
    labels whose ``add_label`` returned but that the store does not hold;
doubled
    items holding more than one label event (the queue hands each item to one annotator,
    overlap 1, so every item should be labeled exactly once);
unacknowledged
    label events in the store that no annotator saw ``add_label`` return.

The goal is zero for all three.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CLASSES = ["cat", "dog", "bird"]
POOL_FINGERPRINT = "pg-load-benchmark-0123456789"


def label_for(key: str) -> str:
    return CLASSES[int(key) % len(CLASSES)]


# ------------------------------------------------------------------------ worker process


def worker(url: str, annotator: str, seconds: float, batch: int, result_path: str) -> None:
    """One annotator: claim a batch, label it, repeat until the time is up."""
    from alwidget.store import StoreError, open_store

    store = open_store(url, pool_fingerprint=POOL_FINGERPRINT, classes=CLASSES, annotator=annotator)
    print("ready", flush=True)
    sys.stdin.readline()  # every annotator starts at once, so they really compete
    label_seconds: list[float] = []
    claim_seconds: list[float] = []
    acknowledged: list[str] = []
    errors: list[str] = []
    started_at = time.monotonic()
    stop = started_at + seconds
    ran_dry_after = None  # seconds after which claim() handed out nothing
    with store:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                keys = store.claim(batch, lease_seconds=600, overlap=1)
            except StoreError as error:
                errors.append(f"claim: {error}")
                continue
            claim_seconds.append(time.perf_counter() - started)
            if not keys:
                ran_dry_after = time.monotonic() - started_at
                break
            for key in keys:
                if time.monotonic() >= stop:
                    break
                started = time.perf_counter()
                try:
                    store.add_label(key, label_for(key), strategy="load")
                except StoreError as error:
                    errors.append(f"label {key}: {error}")
                    continue
                label_seconds.append(time.perf_counter() - started)
                acknowledged.append(key)
    Path(result_path).write_text(
        json.dumps(
            {
                "annotator": annotator,
                "acknowledged": acknowledged,
                "label_seconds": label_seconds,
                "claim_seconds": claim_seconds,
                "errors": errors,
                "ran_dry_after": ran_dry_after,
            }
        )
    )


# ------------------------------------------------------------------------ parent process


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] if ordered else 0.0


def ms(value: float) -> str:
    return f"{value * 1e3:.1f}"


def run_one(url: str, n_annotators: int, args, folder: Path) -> dict:
    from alwidget.store import open_store

    rng = random.Random(n_annotators)
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT, classes=CLASSES) as store:
        store.enqueue((str(i), rng.random()) for i in range(args.items))
    workers = []
    for index in range(n_annotators):
        result = folder / f"n{n_annotators}-a{index}.json"
        command = [
            sys.executable, __file__, "--worker", url, f"a{index}", str(args.seconds),
            str(args.batch), str(result),
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        workers.append((process, result))
    for process, _ in workers:
        line = process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"a worker failed to start (said {line!r})")
    started = time.monotonic()
    for process, _ in workers:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process, _ in workers:
        if process.wait(timeout=args.seconds + 300) != 0:
            raise SystemExit(f"a worker exited with status {process.returncode}")
    wall = time.monotonic() - started

    results = [json.loads(path.read_text()) for _, path in workers]
    acknowledged = Counter()
    label_seconds: list[float] = []
    claim_seconds: list[float] = []
    errors: list[str] = []
    for result in results:
        acknowledged.update((key, result["annotator"]) for key in result["acknowledged"])
        label_seconds += result["label_seconds"]
        claim_seconds += result["claim_seconds"]
        errors += result["errors"]
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT, classes=CLASSES) as store:
        events = [
            (record.item_key, record.annotator, record.label)
            for record in store.history()
            if record.kind == "label"
        ]
    stored = Counter((key, who) for key, who, _ in events)
    per_item = Counter(key for key, _, _ in events)
    wrong_label = sum(1 for key, _, label in events if label != label_for(key))
    return {
        "n": n_annotators,
        "labels": sum(acknowledged.values()),
        "labels_per_s": sum(acknowledged.values()) / args.seconds,
        "wall": wall,
        "label_median": statistics.median(label_seconds) if label_seconds else 0.0,
        "label_p95": quantile(label_seconds, 0.95),
        "label_max": max(label_seconds, default=0.0),
        "claim_median": statistics.median(claim_seconds) if claim_seconds else 0.0,
        "claim_p95": quantile(claim_seconds, 0.95),
        "errors": errors,
        "lost": sum(1 for pair in acknowledged if pair not in stored),
        "doubled": sum(1 for count in per_item.values() if count > 1),
        "unacknowledged": sum(1 for pair in stored if pair not in acknowledged),
        "wrong_label": wrong_label,
        "per_annotator": sorted(len(result["acknowledged"]) for result in results),
        "ran_dry": [r["ran_dry_after"] for r in results if r["ran_dry_after"] is not None],
    }


def report(rows: list[dict], args, server: str) -> str:
    lines = [
        f"# bench_pg_load.py: {args.seconds:g} s per run, claim batch {args.batch}, queue of "
        f"{args.items} items, overlap 1, no think time",
        f"# {server}; {platform.python_version()}, {os.cpu_count()} cores shared with the "
        f"server; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"# {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| annotators | labels | labels/s | add_label median / p95 / max (ms) | "
        "claim median / p95 (ms) | errors | lost | doubled | unacknowledged |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n']} | {row['labels']} | {row['labels_per_s']:.0f} | "
            f"{ms(row['label_median'])} / {ms(row['label_p95'])} / {ms(row['label_max'])} | "
            f"{ms(row['claim_median'])} / {ms(row['claim_p95'])} | {len(row['errors'])} | "
            f"{row['lost']} | {row['doubled']} | {row['unacknowledged']} |"
        )
    lines.append("")
    for row in rows:
        lines.append(f"N={row['n']}: labels per annotator {row['per_annotator']}")
        for after in row["ran_dry"]:
            lines.append(f"  an annotator got no items from claim() after {after:.1f} s")
        if row["wrong_label"]:
            lines.append(f"  {row['wrong_label']} stored labels differ from what was sent")
        for error in row["errors"][:5]:
            lines.append(f"  error: {error}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--postgres-url", help="admin URL of an existing server")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fixtures.postgres import ExistingServer, PostgresServer, _admin, find_postgres_bindir

    if args.postgres_url:
        server = ExistingServer(args.postgres_url)
        description = "existing server"
    else:
        bindir = find_postgres_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries: run scripts/install-postgres.sh")
        server = PostgresServer(bindir)
        server.start()
        version = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        description = f"throwaway {version} on 127.0.0.1 (fsync=off, max_connections=60)"
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for n in args.annotators:
                database = f"alwidget_load_{n}_{os.getpid()}"
                _admin(server, f'CREATE DATABASE "{database}"')
                try:
                    row = run_one(server.url(database), n, args, Path(folder))
                finally:
                    _admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                rows.append(row)
                print(
                    f"N={n}: {row['labels_per_s']:.0f} labels/s, add_label p95 "
                    f"{ms(row['label_p95'])} ms, lost {row['lost']}, doubled {row['doubled']}",
                    flush=True,
                )
    finally:
        if isinstance(server, PostgresServer):
            server.stop()
    text = report(rows, args, description)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
