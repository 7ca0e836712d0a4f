"""Tables of the results committed under results/baselines/, with the date, machine, load and
the command that recorded them, read from the rows themselves."""

from __future__ import annotations

from pathlib import Path

RECORD_COMMAND = {"ci": "gam-bench check suites/ci.yaml --baseline results/baselines/ci --update"}


def baselines_markdown(root: Path | str = "results/baselines") -> str:
    from gam_bench import baselines, store

    root = Path(root)
    parts = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        command = RECORD_COMMAND.get(folder.name, f"gam-bench run suites/{folder.name}.yaml --out {folder}")
        parts += [f"## `{folder}`", "", f"Recorded with `{command}`.", ""]
        for run in baselines.recorded_runs(folder):
            parts += _run_table(store.load(run), run)
    return "\n".join(parts) if parts else f"No results are committed under `{root}`."


def _run_table(rows, run: Path) -> list[str]:
    ok = rows[rows["status"] == "ok"].sort_values(["model", "mode", "seq_len"])
    first = rows.iloc[0]
    start, end = rows["started_at"].min(), rows["started_at"].max()
    load = rows["load_avg_1m"]
    head = [
        f"### `{run}`",
        "",
        f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC · {first['device_name']} ({first['device']}), "
        f"{first['threads']} thread(s), torch {first['torch_version']}, gam-bench {first['gam_bench_version']} "
        f"(git {str(first['git_sha'])[:12]}) · 1-minute load {load.min():.2f}-{load.max():.2f} · "
        f"{len(ok)} of {len(rows)} cells ok",
        "",
        "| model | mode | B | T | median ms | IQR ms | control ms | tensor MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    body = [
        f"| {r.model} | {r.mode} | {r.batch_size} | {r.seq_len} | {r.time_ms:.2f} | "
        f"{r.time_ms_q75 - r.time_ms_q25:.2f} | {_num(r.control_ms)} | {_num(r.peak_tensor_bytes / 2**20)} |"
        for r in ok.itertuples()
    ]
    return [*head, *body, ""]


def _num(value) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"
