"""The paper's claims, measured: train the paper's model and its ablations with equal steps and the
same seed, evaluate each on the held-out split, and write a markdown table and the raw JSON.

  python bench/ablations.py --data ../shared/data/shoe-vs-sandal-vs-boot-15k.zip \
      --base cpu --epochs 2

Each run is `hybridgan train --preset <base>+<modifier>` followed by `hybridgan evaluate`; the table
lists those exact commands, the wall time and img/s of each run, and its metrics.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [  # (modifier, what the paper says about it); "" is the base itself
    ("", "the paper's Model1 (SA in D, minibatch stddev, info loss, lambda_GP = 10)"),
    ("no-sa", "sec. 3.3: SA in D 'does help'"),
    ("no-mbstd", "sec. 3.4: minibatch stddev against mode collapse"),
    ("no-info", "sec. 3.2: c_info gives control of shape"),
    ("plain", "a plain conditional WGAN-GP"),
    ("sa-g", "Model2, sec. 3.3 / Fig. 6: did not fit on a V100"),
    ("gp3", "sec. 4.3: lambda_GP = 3 explodes"),
    ("mismatch", "sec. 4.3: mismatched image/label pairs as fakes did not help"),
    ("spectral-norm", "sec. 4.3: spectral norm did not help"),
    ("proj", "beyond the paper: projection term in the critic (Miyato & Koyama 2018)"),
    ("cond8", "beyond the paper: the class joins D at 8x8 instead of 4x4"),
    ("lazy-gp", "beyond the paper: the penalty every 4th critic step (StyleGAN2)"),
    ("ema", "beyond the paper: EMA of G's weights (row `raw` below: the same run's raw G)"),
]


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, p.stdout + p.stderr if p.returncode else p.stdout


def metrics_cells(g: dict) -> str:
    cf = g["class_fidelity"]
    worst = min((v, k) for k, v in cf.items() if k != "overall")
    return (f"{g['fd']:.2f} | {cf['overall']:.3f} ({worst[1]} {worst[0]:.2f}) | {g['precision']:.2f} | "
            f"{g['recall']:.2f} | {g['coverage']:.2f}")


def median_img_s(row: dict) -> float | None:
    """The run's median training speed from its metrics.jsonl: unlike the wall time, it is not
    inflated by minutes in which something else used the machine."""
    parts = row["train_command"].split()
    if "--run-dir" not in parts:
        return None
    metrics = Path(parts[parts.index("--run-dir") + 1]) / "metrics.jsonl"
    if not metrics.is_absolute():
        metrics = ROOT / metrics
    try:
        speeds = sorted(json.loads(line)["Speed/img_per_s"] for line in metrics.read_text().splitlines()
                        if "Speed/img_per_s" in line)
    except OSError:
        return None
    return speeds[len(speeds) // 2] if speeds else None


def table(results: list[dict]) -> str:
    lines = ["| preset | paper's claim | status | wall s | img/s (median) | FD | class fidelity (worst class) | "
             "precision | recall | coverage | c_info[0] |rho| | c_info[1] |rho| | Q R^2 |", "|" + " --- |" * 13]
    for r in results:
        rep = r.get("report")
        speed = r.get("median_img_s") or median_img_s(r)
        head = (f"| `{r['preset']}` | {r['claim']} | {r['status']} | {r['train_seconds']:.0f} | "
                f"{speed or 0:.0f} |")
        if not rep:
            lines.append(head + " |" * 8)
            continue
        ci = rep["c_info"]
        rho = [f"{v['monotonicity']:.2f} ({v['steers']})" for v in ci["dims"].values()]
        rho += [""] * (2 - len(rho))
        q = ", ".join(f"{v:.2f}" for v in ci["q_r2"]) if ci.get("q_r2") else ""
        lines.append(f"{head} {metrics_cells(rep['generated'])} | {' | '.join(rho[:2])} | {q} |")
        if "raw_generator" in rep:  # an EMA run: the raw G of the same run, same metrics
            lines.append(f"| `{r['preset']}` raw | the same run without the EMA | | | | "
                         f"{metrics_cells(rep['raw_generator'])} | | | |")
    floor = next((r["report"]["floor"] for r in results if r.get("report")), None)
    if floor:
        lines.append(f"| real held-out vs train | the floor | | | | {metrics_cells(floor)} | | | |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- table: written by bench/ablations.py -->", "<!-- /table -->"


def write_table(path: Path, text: str) -> None:
    """Put the table between the markers of an existing page (its prose stays), or start the page."""
    page = path.read_text() if path.exists() else f"# Ablations\n\n{BEGIN}\n{END}\n"
    if BEGIN not in page or END not in page:
        page += f"\n{BEGIN}\n{END}\n"
    head, rest = page.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{rest.split(END, 1)[1]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--base", default="cpu")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated modifiers to run ('base' = the base "
                    "itself); results merge into the existing ablations.json")
    ap.add_argument("--out", default="docs", help="folder of ablations.md (the table goes between its markers) "
                    "and ablations.json")
    ap.add_argument("--runs", default="runs/ablations")
    ap.add_argument("--render", action="store_true", help="only rewrite the table from ablations.json")
    args = ap.parse_args()
    out, runs = ROOT / args.out, ROOT / args.runs
    if args.render:
        rows = json.loads((out / "ablations.json").read_text())
        for r in rows:
            r["median_img_s"] = r.get("median_img_s") or median_img_s(r)
        (out / "ablations.json").write_text(json.dumps(rows, indent=2, default=float))
        write_table(out / "ablations.md", table(rows))
        return
    out.mkdir(parents=True, exist_ok=True)
    wanted = {("" if m == "base" else m) for m in args.only.split(",")} if args.only else None
    order = [m for m, _ in VARIANTS]
    previous = out / "ablations.json"
    results = {r["modifier"]: r for r in json.loads(previous.read_text())} if previous.exists() and wanted else {}
    for mod, claim in VARIANTS:
        if wanted is not None and mod not in wanted:
            continue
        preset = f"{args.base}+{mod}" if mod else args.base
        run_dir = runs / preset.replace("+", "_")
        train_cmd = [sys.executable, "-m", "hybridgan.cli", "train", "--preset", preset, "--data", args.data,
                     "--epochs", str(args.epochs), "--run-dir", str(run_dir), "--quiet", "--no-resume",
                     "--set", f"train.seed={args.seed}"]
        secs, text = run(train_cmd)
        row = {"modifier": mod, "preset": preset, "claim": claim, "train_seconds": secs,
               "train_command": "hybridgan " + " ".join(train_cmd[3:])}
        try:
            result = json.loads(text[text.index("{"):])
            row["status"], ckpt = result["status"], result.get("checkpoint")
        except ValueError:
            row["status"], ckpt = "failed: " + text.strip().splitlines()[-1][:200], None
        if ckpt:
            eval_cmd = [sys.executable, "-m", "hybridgan.cli", "evaluate", "--checkpoint", ckpt, "--data", args.data]
            _, etext = run(eval_cmd)
            row["eval_command"] = "hybridgan " + " ".join(eval_cmd[3:])
            try:
                row["report"] = json.loads(etext[etext.index("{"):])
            except ValueError:
                row["status"] += "; evaluation failed"
        row["median_img_s"] = median_img_s(row)
        results[mod] = row
        print(json.dumps({k: v for k, v in row.items() if k != "report"}), flush=True)
        ordered = sorted(results.values(), key=lambda r: order.index(r["modifier"]))
        (out / "ablations.json").write_text(json.dumps(ordered, indent=2, default=float))
        write_table(out / "ablations.md", table(ordered))
    print(table(sorted(results.values(), key=lambda r: order.index(r["modifier"]))))


if __name__ == "__main__":
    main()
