"""The `hybridgan` command line: data, train, sample, grid, presets, publish, serve.

It drives the same functions the service and the worker use (model.train, model.load_generator,
model.generate); it holds no training or sampling logic of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def hybridgan_home() -> Path:
    from model.store import default_home

    return default_home()


def _parse_floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --c-info needs comma-separated numbers, got {text!r}") from None


def _class_index(info, name: str) -> int:
    if name.isdigit() and int(name) < len(info.class_names):
        return int(name)
    lower = [c.lower() for c in info.class_names]
    if name.lower() in lower:
        return lower.index(name.lower())
    raise SystemExit(f"error: unknown class {name!r}; this model knows {info.class_names}")


def cmd_presets(args) -> int:
    from model.config import BASES, MODIFIERS, ALIASES, get_preset

    for name in list(BASES) + list(ALIASES):
        cfg = get_preset(name)
        print(f"{name:8s} {cfg.model.resolution:4d}px  G widths from {cfg.model.g_channels}, "
              f"SA in G at {list(cfg.model.g_attn_resolutions)}, SA in D at {list(cfg.model.d_attn_resolutions)}, "
              f"batch {cfg.train.batch_size}, {cfg.train.epochs:g} epochs")
    print("modifiers (append with +, e.g. cpu+no-sa):", ", ".join(MODIFIERS))
    return 0


def cmd_data(args) -> int:
    from model.config import DataConfig
    from model.data import load_dataset

    cfg = DataConfig(path=args.path, layout=args.layout, cache_dir=args.cache_dir or "")
    t0 = time.perf_counter()

    def progress(i, n):
        print(f"\rpreparing {i}/{n} images", end="", file=sys.stderr, flush=True)

    data = load_dataset(cfg, args.resolution, progress=progress, use_cache=args.action == "prepare")
    print(file=sys.stderr)
    summary = data.summary()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary, indent=2))
    for s in data.skipped[:10]:
        print(f"skipped {s}", file=sys.stderr)
    if data.skipped:
        print(f"{len(data.skipped)} image(s) could not be read and were skipped", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from model import train
    from model.config import apply_overrides, get_preset

    cfg = get_preset(args.preset)
    overrides = list(args.set or [])
    if args.data:
        overrides.append(f"data.path={args.data}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.nproc:
        overrides.append(f"train.nproc={args.nproc}")
    cfg = apply_overrides(cfg, overrides)
    if not cfg.data.path:
        raise SystemExit("error: give the dataset with --data PATH (a .zip or a folder of class folders)")
    run_dir = Path(args.run_dir) if args.run_dir else hybridgan_home() / "runs" / time.strftime("run-%Y%m%d-%H%M%S")
    print(f"run directory: {run_dir}", file=sys.stderr)
    bar = tqdm(total=None, unit="step", dynamic_ncols=True, disable=args.quiet)

    def progress(p):
        if bar.total is None:
            bar.total = p["total_steps"]
        bar.n = p["step"]
        losses = p["losses"]
        bar.set_postfix_str(f"epoch {p['epoch']:.2f}/{p['epochs']:g} D {losses['Loss/D']:.3f} "
                            f"G {losses['Loss/G']:.3f} GP {losses['Loss/GP']:.3f} info {losses['Loss/info']:.3f} "
                            f"{p['img_per_s']:.1f} img/s", refresh=False)
        bar.refresh()

    stop = []

    def on_sigint(signum, frame):  # first Ctrl-C: checkpoint and stop; a second one aborts
        if stop:
            raise KeyboardInterrupt
        stop.append(True)
        print("\nstopping after this step (Ctrl-C again to abort without a checkpoint)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_sigint)
    t0 = time.perf_counter()
    result = train(cfg, run_dir, progress_fn=progress, should_stop=lambda: bool(stop),
                   resume=not args.no_resume, resume_from=args.resume_from)
    bar.close()
    print(json.dumps({"status": result.status, "step": result.step, "total_steps": result.total_steps,
                      "checkpoint": result.checkpoint, "run_dir": result.run_dir,
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    return 0


def _load(args):
    from model import load_generator

    return load_generator(args.checkpoint, device=args.device or "cpu")


def cmd_sample(args) -> int:
    from model import generate, image_grid

    G, info = _load(args)
    c = _class_index(info, args.class_name)
    imgs = generate(G, c, _parse_floats(args.c_info), seed=args.seed, n=args.n)
    image_grid(imgs, ncol=args.ncol).save(args.out)
    print(f"wrote {args.n} {info.class_names[c]} image(s) from {info.version} to {args.out}")
    return 0


def cmd_grid(args) -> int:
    from model import cinfo_grid, image_grid

    G, info = _load(args)
    c = _class_index(info, args.class_name)
    imgs, _ = cinfo_grid(G, c, seed=args.seed, steps=args.steps, dims=(args.dim_rows, args.dim_cols),
                         value_range=(-args.range, args.range))
    image_grid(imgs, ncol=args.steps).save(args.out)
    print(f"wrote the {args.steps}x{args.steps} c_info grid of {info.class_names[c]} to {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from model.evaluation import evaluate_checkpoint, summary_line

    report, out = evaluate_checkpoint(args.checkpoint, args.data, home=args.home or hybridgan_home(),
                                      layout=args.layout, out=args.out, seed=args.seed,
                                      log=lambda m: print(m, file=sys.stderr),
                                      inception_weights=args.inception_weights)
    print(json.dumps(report, indent=2))
    print(f"report written to {out}", file=sys.stderr)
    print(summary_line(report), file=sys.stderr)
    return 0


def cmd_publish(args) -> int:
    from model.store import publish

    record = publish(args.home or hybridgan_home(), args.checkpoint, args.version)
    print(json.dumps(record, indent=2))
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    if args.checkpoint:
        from model.store import publish

        print(f"published {publish(settings.home, args.checkpoint)['version']}", file=sys.stderr)
    elif not args.no_default_model:
        from model.store import ensure_default_model

        shipped = ensure_default_model(settings.home)
        if shipped:
            print(f"nothing was published in {settings.home}: published the shipped model {shipped['version']}",
                  file=sys.stderr)
    embedded = settings.embedded_worker
    if embedded is None:
        embedded = settings.broker_url.startswith("filesystem://")
    worker = None
    if embedded and not args.no_worker:
        import subprocess

        env = {**os.environ, "HYBRIDGAN_HOME": str(settings.home), "HYBRIDGAN_BROKER_URL": settings.broker_url}
        worker = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "worker", "--loglevel", "warning"], env=env)
        print(f"started an embedded training worker (pid {worker.pid}) on {settings.broker_url}", file=sys.stderr)
    print(f"explorer: http://{settings.host}:{settings.port}/   admin: /admin   API docs: /docs", file=sys.stderr)

    def exit_on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    # uvicorn shuts down gracefully on SIGTERM, restores the handler it found and raises the signal
    # again: with the default handler the process would die there, before `finally` stops the worker.
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    finally:
        if worker is not None:
            worker.terminate()  # warm shutdown: a running job is re-queued and resumes next time
            try:
                worker.wait(timeout=30)
            except Exception:
                worker.kill()
    return 0


def cmd_worker(args) -> int:
    from hybridgan.queue import ensure_broker_dirs, queue_name
    from model.store import default_home

    ensure_broker_dirs(default_home())
    from worker.celery_app import app

    app.worker_main(["worker", "-Q", args.queue or queue_name(), "-c", str(args.concurrency),
                     "-n", f"hybridgan-{os.getpid()}@%h", "--loglevel", args.loglevel])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybridgan", description="Hybrid-GAN shoe generator: data, training, sampling.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("presets", help="list the named presets", description="List the named presets and modifiers.")
    s.set_defaults(fn=cmd_presets)

    s = sub.add_parser("data", help="inspect or prepare (cache) a dataset",
                       description="Read a dataset (.zip with manifest.csv, folder-per-class tree or UT-Zap50K tree), "
                                   "report classes, split sizes and skipped images; 'prepare' also caches it.")
    s.add_argument("action", choices=["inspect", "prepare"])
    s.add_argument("path", help="a .zip or a folder")
    s.add_argument("--layout", default="auto",
                   choices=["auto", "manifest", "folders", "utzap50k-hard", "utzap50k-easy"])
    s.add_argument("--resolution", type=int, default=32)
    s.add_argument("--cache-dir", help="default: $HYBRIDGAN_HOME/cache")
    s.set_defaults(fn=cmd_data)

    s = sub.add_parser("train", help="train a model into a run directory",
                       description="Train Hybrid-GAN from a preset. Re-running with the same --run-dir resumes "
                                   "from its latest checkpoint.")
    s.add_argument("--preset", default="cpu", help="e.g. tiny, cpu, cpu64, paper (model1), model2, cpu+no-sa")
    s.add_argument("--data", help="dataset path (.zip or folder)")
    s.add_argument("--run-dir", help="default: $HYBRIDGAN_HOME/runs/run-<time>")
    s.add_argument("--epochs", type=float)
    s.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    s.add_argument("--nproc", type=int, help="data-parallel processes (torchrun; one per GPU, gloo on CPU); "
                   "train.batch_size stays the global batch")
    s.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. --set train.lr_g=1e-4 (repeatable)")
    s.add_argument("--resume-from", help="a .state.pt of another run to continue from")
    s.add_argument("--no-resume", action="store_true", help="refuse to continue a run directory's checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    for name, fn, helptext in (("sample", cmd_sample, "write a PNG of generated shoes of one class"),
                               ("grid", cmd_grid, "write the c_info grid (paper Fig. 4) of one class as a PNG")):
        s = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        s.add_argument("--checkpoint", required=True, help="a .safetensors generator")
        s.add_argument("--class", dest="class_name", required=True, help="class name or index")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--out", required=True, help="PNG path")
        s.add_argument("--device")
        if name == "sample":
            s.add_argument("--n", type=int, default=16)
            s.add_argument("--ncol", type=int)
            s.add_argument("--c-info", help="comma-separated values in [-1, 1]; default: drawn from each seed")
        else:
            s.add_argument("--steps", type=int, default=7)
            s.add_argument("--range", type=float, default=1.0, help="sweep c_info over [-range, range]")
            s.add_argument("--dim-rows", type=int, default=0)
            s.add_argument("--dim-cols", type=int, default=1)
        s.set_defaults(fn=fn)
    s = sub.add_parser("evaluate", help="measure a checkpoint on the held-out split (JSON report)",
                       description="Quality (FD/KID in our own classifier's features), class fidelity, "
                                   "precision/recall/density/coverage, mode collapse, c_info control and "
                                   "memorisation of a generator, with the same metrics for real held-out images "
                                   "as the floor. Writes <checkpoint>.eval.json unless --out is given.")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="the dataset the model was trained on")
    s.add_argument("--layout", default="auto")
    s.add_argument("--out")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--home", help="where classifiers are kept (default: $HYBRIDGAN_HOME)")
    s.add_argument("--inception-weights", default=os.environ.get("HYBRIDGAN_INCEPTION_WEIGHTS"),
                   help="a local Inception-v3 FID weights file (torch-fidelity's pt_inception-2015-12-05 .pth): "
                        "also report standard FID (needs torch-fidelity and a matching torchvision)")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("publish", help="publish a checkpoint as the served model",
                       description="Copy a generator checkpoint into the run store and make it the model the "
                                   "service serves (a running service hot-loads it).")
    s.add_argument("checkpoint")
    s.add_argument("--version", help="version name (default: from the checkpoint)")
    s.add_argument("--home", help="the run store (default: $HYBRIDGAN_HOME or ~/.hybridgan)")
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("serve", help="start the web service (explorer + REST API)",
                       description="Start the FastAPI service. Settings come from HYBRIDGAN_* environment "
                                   "variables (see README); --host and --port override theirs.")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--checkpoint", help="publish this generator checkpoint before starting")
    s.add_argument("--no-default-model", action="store_true",
                   help="do not publish the shipped model into a store that has none")
    s.add_argument("--log-level", default="info")
    s.add_argument("--no-worker", action="store_true", help="do not start the embedded training worker")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("worker", help="run a Celery training worker (one per GPU)",
                       description="Run a Celery worker that executes training jobs. The broker is "
                                   "HYBRIDGAN_BROKER_URL (default filesystem://, the embedded one in HYBRIDGAN_HOME).")
    s.add_argument("--queue", help="default: $HYBRIDGAN_QUEUE or 'training'")
    s.add_argument("--concurrency", type=int, default=1, help="jobs at once; keep 1 per GPU")
    s.add_argument("--loglevel", default="info")
    s.set_defaults(fn=cmd_worker)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from model import CheckpointError, ConfigError, DataError, TrainingDiverged

    try:
        return args.fn(args)
    except (ConfigError, DataError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
