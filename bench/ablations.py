"""The paper's claims, measured: train the paper's model and its ablations with equal steps and the
same seed, evaluate each on the held-out split, and write a markdown table and the raw JSON.

  python bench/ablations.py --data ../shared/data/shoe-vs-sandal-vs-boot-15k.zip \
      --base cpu --epochs 3 --out docs/ablations

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
VARIANTS = [  # (modifier, what the paper says about it)
    ("", "the paper's Model1 (SA in D, minibatch stddev, info loss, lambda_GP = 10)"),
    ("no-sa", "sec. 3.3: SA in D 'does help'"),
    ("no-mbstd", "sec. 3.4: minibatch stddev against mode collapse"),
    ("no-info", "sec. 3.2: c_info gives control of shape"),
    ("plain", "a plain conditional WGAN-GP"),
    ("sa-g", "Model2, sec. 3.3 / Fig. 6: did not fit on a V100"),
    ("gp3", "sec. 4.3: lambda_GP = 3 explodes"),
]


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, p.stdout + p.stderr if p.returncode else p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--base", default="cpu")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--out", default="docs/ablations")
    ap.add_argument("--runs", default="runs/ablations")
    args = ap.parse_args()
    out, runs = ROOT / args.out, ROOT / args.runs
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for mod, claim in VARIANTS:
        preset = f"{args.base}+{mod}" if mod else args.base
        run_dir = runs / preset.replace("+", "_")
        train_cmd = [sys.executable, "-m", "hybridgan.cli", "train", "--preset", preset, "--data", args.data,
                     "--epochs", str(args.epochs), "--run-dir", str(run_dir), "--quiet", "--no-resume"]
        secs, text = run(train_cmd)
        row = {"preset": preset, "claim": claim, "train_seconds": secs, "train_command": " ".join(train_cmd[1:])}
        try:
            result = json.loads(text[text.index("{"):])
            row["status"], ckpt = result["status"], result["checkpoint"]
        except ValueError:
            row["status"], ckpt = "failed: " + text.strip().splitlines()[-1][:200], None
        if ckpt:
            eval_cmd = [sys.executable, "-m", "hybridgan.cli", "evaluate", "--checkpoint", ckpt, "--data", args.data]
            _, etext = run(eval_cmd)
            row["eval_command"] = " ".join(eval_cmd[1:])
            try:
                row["report"] = json.loads(etext[etext.index("{"):])
            except ValueError:
                row["status"] += "; evaluation failed"
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "report"}), flush=True)
    (out / "ablations.json").write_text(json.dumps(results, indent=2, default=float))
    lines = ["| preset | paper's claim | status | train s | FD | class fidelity | precision | recall | "
             "c_info[0] |rho| | c_info[1] |rho| | Q R^2 |", "|" + " --- |" * 11]
    for r in results:
        rep = r.get("report")
        if not rep:
            lines.append(f"| `{r['preset']}` | {r['claim']} | {r['status']} | {r['train_seconds']:.0f} |" + " |" * 7)
            continue
        g, ci = rep["generated"], rep["c_info"]
        rho = [f"{v['monotonicity']:.2f} ({v['steers']})" for v in ci["dims"].values()]
        q = ", ".join(f"{v:.2f}" for v in ci["q_r2"]) if ci.get("q_r2") else ""
        lines.append(f"| `{r['preset']}` | {r['claim']} | {r['status']} | {r['train_seconds']:.0f} | {g['fd']:.2f} | "
                     f"{g['class_fidelity']['overall']:.3f} | {g['precision']:.2f} | {g['recall']:.2f} | "
                     f"{' | '.join(rho)} | {q} |")
    (out / "ablations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
