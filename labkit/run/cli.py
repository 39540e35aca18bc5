"""The ``labkit`` command line.

    labkit run [STUDY|NOTEBOOK...] [--profile smoke|default|paper] [-p key=value ...] [--jobs N]
               [--threads N] [--scheduler ADDR] [--seeds 0,1,2] [--force] [--no-wait]
    labkit studies
    labkit params STUDY
    labkit data list | fetch [KEY] | verify [KEY]
    labkit models list
    labkit gallery

Errors a person can fix (LabkitError) are printed as one line, with exit code 2. Nothing heavy
(papermill, Dask, torch) is imported before the arguments, parameters, folders and user files
have been checked, so such an error comes within a second. ``labkit run``
exits 0 when every notebook is ok, 3 when some are partial (a provider/system failed, the study
completed) and none failed, 1 when a notebook failed (after showing the failing cell and its
error), 130 when interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labkit import models, studies
from labkit.errors import LabkitError
from labkit.params import PROFILE_NAMES, schema_for


def _interrupt_on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_run(args: argparse.Namespace) -> int:
    import signal

    from labkit.run import (  # each command imports only what it needs (a bad value refused < 1 s)
        plan,
        runner,
        summary,
    )

    overrides = plan.parse_assignments(args.param or [])
    seeds = plan.parse_seeds(args.seeds)
    # SIGTERM unwinds like Ctrl-C: workers and kernels are killed, staging folders removed,
    # previous outputs left untouched (SIGKILL cannot be caught: workers and kernels then
    # notice their parent is gone, see labkit.cluster.watch_parent).
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        results = runner.run(
            args.notebooks,
            profile=args.profile,
            overrides=overrides,
            jobs=args.jobs,
            timeout=args.timeout,
            seeds=seeds,
            scheduler=args.scheduler,
            force=args.force,
            wait=args.wait,
            threads=args.threads,
        )
    except KeyboardInterrupt:
        print("\nlabkit run: interrupted; previous outputs are untouched", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(summary.summary_table(results))
    code = summary.exit_code(results)
    if args.gallery and code != 1:
        from labkit.run import gallery  # plotly, via the figure writers: only after a run

        print(f"\ngallery: {gallery.write()}")
    return code


def _cmd_data(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from labkit import data  # pandas and the parsers: only for `labkit data`

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


def _cmd_models(args: argparse.Namespace) -> int:  # noqa: ARG001 - every command takes args
    from tabulate import tabulate

    rows = [(r.name, r.source, r.path) for r in models.available()]
    print(tabulate(rows, headers=["model (available offline)", "source", "path"]))
    print(
        "\nAny other Hugging Face model name or local folder also works when it can be "
        "resolved (local path, HF cache, or the hub when online)."
    )
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:  # noqa: ARG001 - every command takes args
    from tabulate import tabulate

    rows = [
        (
            s.id,
            s.title,
            studies.display_path(s.notebook),
            studies.display_path(s.explorer_notebook) if s.explorer else "—",
            studies.display_path(s.benchmark),
        )
        for s in studies.all_studies()
    ]
    print(tabulate(rows, headers=["id", "title", "notebook", "explorer", "benchmark"]))
    print(
        f"\nAdd a study with a study.json in a folder listed in ${studies.STUDY_PATH_ENV} "
        "(see docs/CONVENTIONS.md, 'Adding a study')."
    )
    return 0


def _compact(value: object, width: int = 20) -> str:
    """A profile value for one table cell (JSON, cut at ``width``)."""
    import json

    if value is None:
        return "None"
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def _notebook_defaults(notebook: Path) -> dict[str, dict[str, str]]:
    """The notebook's parameters cell as papermill reads it (default source text and comment)."""
    import papermill as pm

    return {name: dict(info) for name, info in pm.inspect_notebook(str(notebook)).items()}


def describe_params(study_id: str) -> str:
    """The table ``labkit params STUDY`` prints: each parameter's type, its value under each
    profile (the notebook's own default when it sets one, else the profile's) and its meaning."""
    from tabulate import tabulate

    entry = studies.get(study_id)
    declared = _notebook_defaults(entry.notebook) if entry.notebook.is_file() else {}
    schema = schema_for(study_id)
    rows = []
    if schema is None:
        for name, info in declared.items():
            rows.append(
                (
                    name,
                    info.get("inferred_type_name", ""),
                    info.get("default", ""),
                    info.get("help", ""),
                )
            )
        return (
            tabulate(rows, headers=["parameter", "type", "notebook default", "description"])
            + f"\n\n{study_id} declares no schema: values are passed to the notebook unchecked."
        )
    names = list(schema.params) + [n for n in declared if n not in schema.params]
    for name in names:
        param = schema.params.get(name)
        source = declared.get(name, {}).get("default")
        per_profile = []
        for profile in PROFILE_NAMES:
            table = schema.profiles.get(profile, {})
            if source not in (None, "None"):
                per_profile.append(_compact(source.strip("\"'") if source[:1] in "\"'" else source))
            elif name in table:
                per_profile.append(_compact(table[name]))
            elif param is not None and param.none_means is not None:
                per_profile.append("None")
            else:
                per_profile.append("")
        text = param.help if param else declared.get(name, {}).get("help", "")
        if param is not None and param.none_means is not None:
            text += f" (None: {param.none_means})"
        rows.append((name, param.type_label() if param else "(not in schema)", *per_profile, text))
    head = f"{study_id}: {entry.title}\nset with `labkit run {study_id} -p name=value` (JSON values)\n\n"
    return head + tabulate(
        rows,
        headers=["parameter", "type", "smoke", "default", "paper", "description"],
        maxcolwidths=[None, 18, 20, 20, 20, 44],
    )


def _cmd_params(args: argparse.Namespace) -> int:

    name = args.study
    if name.endswith(".ipynb"):
        entry = studies.for_notebook(Path(name))
        if entry is None:
            raise LabkitError(f"{name} is not a registered study's notebook (see `labkit studies`)")
        name = entry.id
    print(describe_params(name))
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:  # noqa: ARG001 - every command takes args
    from labkit.run import gallery  # plotly, via the figure writers: only for `labkit gallery`

    print(gallery.write())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run study notebooks through papermill")
    run.add_argument(
        "notebooks",
        nargs="*",
        metavar="STUDY|NOTEBOOK",
        help="study ids (see `labkit studies`) or .ipynb paths (default: all studies)",
    )
    run.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=None,
        help="sizes to use (default: $LABKIT_PROFILE or 'default')",
    )
    run.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="override a notebook parameter (JSON value or plain string)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes of the embedded Dask cluster (notebooks in parallel)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per notebook's kernel (default: the cores divided by --jobs)",
    )
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="run on an existing Dask cluster, e.g. tcp://host:8786 "
        "(default: $LABKIT_DASK_SCHEDULER, else an embedded local cluster)",
    )
    run.add_argument(
        "--seeds",
        default=None,
        metavar="0,1,2",
        help="run each study once per seed (parameter `seed`) into "
        "<figures>/<study>/seeds/seed-<n>/, then aggregate the spread",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="run every notebook, even those whose inputs are unchanged (cached)",
    )
    run.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="if another labkit run is writing a study, stop (exit 2) instead of waiting for it",
    )
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    run.add_argument(
        "--no-gallery",
        dest="gallery",
        action="store_false",
        help="do not rewrite figures/README.md afterwards",
    )
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

    par = sub.add_parser("params", help="list a study's parameters: type, value per profile, meaning")
    par.add_argument("study", metavar="STUDY|NOTEBOOK", help="study id (see `labkit studies`)")
    par.set_defaults(func=_cmd_params)

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
    except BrokenPipeError:  # `labkit studies | head`: the reader left; not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
