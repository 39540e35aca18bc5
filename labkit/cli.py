"""The ``labkit`` command line.

    labkit run [STUDY|NOTEBOOK...] [--profile smoke|default|paper] [-p key=value ...] [--jobs N]
    labkit studies
    labkit data list | fetch [KEY] | verify [KEY]
    labkit models list
    labkit gallery

Errors a person can fix (LabkitError) are printed as one line, with exit code 2; a notebook
that fails makes ``labkit run`` exit with code 1 after showing the failing cell and its error.
"""
from __future__ import annotations

import argparse
import sys

from labkit.errors import LabkitError


def _cmd_run(args: argparse.Namespace) -> int:
    from labkit import runner

    overrides = runner.parse_assignments(args.param or [])
    results = runner.run(args.notebooks, profile=args.profile, overrides=overrides,
                         jobs=args.jobs, timeout=args.timeout)
    print()
    print(runner.summary_table(results))
    if args.gallery and all(r.status == "ok" for r in results):
        from labkit import gallery
        print(f"\ngallery: {gallery.write()}")
    return 0 if all(r.status == "ok" for r in results) else 1


def _cmd_data(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from labkit import data

    keys = [args.key] if args.key else data.keys()
    if args.action == "list":
        rows = []
        for key in keys:
            ds = data.get(key)
            where = "hf datasets" if ds.is_hf else "missing"
            if not ds.is_hf:
                for origin, root in data.candidate_roots(key):
                    if all((root / f.relpath).is_file() for f in ds.files):
                        where = f"{origin}: {root}"
                        break
            rows.append((key, ds.description[:60], ds.licence[:28], where))
        print(tabulate(rows, headers=["key", "description", "licence", "found"]))
        return 0
    failures = 0
    for key in keys:
        ds = data.get(key)
        if args.action == "verify" and ds.is_hf:
            print(f"{key}: Hugging Face dataset (verified by the datasets library)")
            continue
        try:
            resolved = data.fetch(key) if args.action == "fetch" else data.verify(key)
            print(f"{key}: ok ({len(resolved.sha256)} file(s), {resolved.origin}: {resolved.root})")
        except LabkitError as exc:
            failures += 1
            print(f"{key}: {exc}")
    return 1 if failures else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from labkit import models

    rows = [(r.name, r.source, r.path) for r in models.available()]
    print(tabulate(rows, headers=["model (available offline)", "source", "path"]))
    print("\nAny other Hugging Face model name or local folder also works when it can be "
          "resolved (local path, HF cache, or the hub when online).")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from labkit import studies

    rows = [(s.id, s.title, studies.display_path(s.notebook),
             studies.display_path(s.explorer_notebook) if s.explorer else "—",
             studies.display_path(s.benchmark)) for s in studies.all_studies()]
    print(tabulate(rows, headers=["id", "title", "notebook", "explorer", "benchmark"]))
    print(f"\nAdd a study with a study.json in a folder listed in ${studies.STUDY_PATH_ENV} "
          "(see docs/CONVENTIONS.md, 'Adding a study').")
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    from labkit import gallery

    print(gallery.write())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run study notebooks through papermill")
    run.add_argument("notebooks", nargs="*", metavar="STUDY|NOTEBOOK",
                     help="study ids (see `labkit studies`) or .ipynb paths (default: all studies)")
    run.add_argument("--profile", choices=("smoke", "default", "paper"), default=None,
                     help="sizes to use (default: $LABKIT_PROFILE or 'default')")
    run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                     help="override a notebook parameter (JSON value or plain string)")
    run.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    run.add_argument("--no-gallery", dest="gallery", action="store_false",
                     help="do not rewrite figures/README.md afterwards")
    run.set_defaults(func=_cmd_run)

    stu = sub.add_parser("studies", help="list the registered studies and where their parts are")
    stu.set_defaults(func=_cmd_studies)

    dat = sub.add_parser("data", help="list, fetch or verify datasets")
    dat.add_argument("action", choices=("list", "fetch", "verify"))
    dat.add_argument("key", nargs="?", help="dataset key (default: all)")
    dat.set_defaults(func=_cmd_data)

    mod = sub.add_parser("models", help="list models available offline")
    mod.add_argument("action", choices=("list",))
    mod.set_defaults(func=_cmd_models)

    gal = sub.add_parser("gallery", help="write figures/README.md from the run records")
    gal.set_defaults(func=_cmd_gallery)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LabkitError as exc:
        print(f"labkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
