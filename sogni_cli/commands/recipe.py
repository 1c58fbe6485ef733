"""``sogni recipe validate|plan|run|report|schema``: batch YAML recipes (contract §8)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import ExitCode, ExitStatus, UsageError
from ..render.output import out, out_json
from ..core.term import err
from ._common import make_app

EPILOG = """\b
Examples:
  sogni recipe validate recipes/product-shots.yaml
  sogni recipe plan recipes/storyboard.yaml --json
  sogni recipe run recipes/product-shots.yaml -o out/ --concurrency 8
  sogni recipe run recipes/batch-edit.yaml --set style=watercolor --continue-on-error
  sogni recipe run recipes/product-shots.yaml -o out/ --shard 2/4      (one CI machine of four)
  sogni recipe plan recipes/product-shots.yaml --estimate             (the API's cost preview per job)
  sogni recipe run recipes/product-shots.yaml -o out/ --budget 200     (stop before crossing 200 units)
  sogni recipe report out-1/ out-2/ out-3/ out-4/ --html report.html
  sogni recipe emit kubernetes recipes/product-shots.yaml --shards 8 > job.yaml
  SOGNI_SHARD_COUNT=4 sogni recipe run recipes/product-shots.yaml -o out/ --shard auto
"""

app = make_app("Batch YAML recipes: validate, plan, run, report.", epilog=EPILOG, no_args_is_help=True)

SET_HELP = "Set a recipe variable, KEY=VALUE (repeatable)."
STRICT_HELP = "Treat a glob that matches no files as an error."
SHARDS_HELP = "With --shard auto: the number of shards (Kubernetes does not export it) [env SOGNI_SHARD_COUNT]."


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        err(line)


def _prepare(ctx: typer.Context, file: Path, sets: list[str] | None, strict: bool, requests: bool = True):
    from ..recipes.plan import RecipeInvalid, prepare

    s = _settings_no_emulator(ctx)
    try:
        plan = prepare(str(file), sets=sets, strict=strict, settings=s, requests=requests)
    except RecipeInvalid as exc:
        _print_lines(exc.lines)
        raise
    _print_lines([p.format(plan.file) for p in plan.problems.sorted() if p.warning])
    return plan, s


def _quiet(ctx: typer.Context) -> bool:
    return bool(getattr(ctx.find_root().obj, "quiet", False))


def _settings_no_emulator(ctx: typer.Context):
    """Settings for validate/plan: no key, no network, no emulator start."""
    from ..core.options import GlobalOptions
    from ..core.config import resolve

    root = ctx.find_root()
    g = root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()
    s = resolve(api_key=g.api_key, base_url=g.base_url, profile=g.profile, timeout=g.timeout,
                max_retries=g.max_retries, quiet=g.quiet, verbose=g.verbose, no_color=g.no_color, dry_run=True,
                emulator=g.emulator)
    if g.emulator and not g.base_url:
        s.base_url = "http://127.0.0.1:8787"
    return s


def _check_templates_online(plan, s) -> None:
    """Template jobs against the API's templates, when a key is set and the API answers (else a note)."""
    from dataclasses import replace

    from ..api.client import make_client
    from ..core.errors import SogniError
    from ..recipes.plan import RecipeInvalid
    from ..recipes.template_check import check_templates

    if not s.api_key:
        err(f"{plan.file}: template inputs checked offline only (no API key).")
        return
    api = make_client(replace(s, dry_run=False), log=err)
    try:
        found = check_templates(plan, api)
    except SogniError as exc:
        err(f"{plan.file}: template inputs checked offline only (the API did not answer: {exc.message}).")
        return
    finally:
        api.close()
    if found:
        exc = RecipeInvalid(plan.file, plan.problems)
        _print_lines(exc.lines)
        raise exc


def _parse_shard(text: Optional[str], shards: Optional[int] = None, quiet: bool = False):
    """``--shard K/N`` or ``--shard auto`` (the engine's variables); ``SOGNI_SHARD`` when not given."""
    from ..recipes.engines import resolve_shard

    sh, said = resolve_shard(text, shards)
    if said and not quiet:
        err(said)
    return sh


@app.command()
def validate(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The recipe (YAML).", show_default=False),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP, show_default=False),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    offline: bool = typer.Option(False, "--offline", help="Never ask the API (template jobs are then checked only for their structure)."),
) -> None:
    """Check a recipe and report every problem as FILE:LINE:COL: message (stderr; exit 2)."""
    plan, s = _prepare(ctx, file, set_, strict)
    from ..recipes.effects import effects, effects_text
    from ..recipes.plan import summary_line

    if not offline and any(pj.kind == "template" for pj in plan.jobs):
        _check_templates_online(plan, s)

    if not s.quiet:
        err(f"{file}: valid ({summary_line(plan)})")
    # What it will do is said even with --quiet: it is what the reader must know before running it.
    _print_lines(effects_text(effects(plan)))


@app.command()
def plan(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The recipe (YAML).", show_default=False),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP, show_default=False),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N", help="Show only shard K of N (auto: from the batch engine) [env SOGNI_SHARD].", show_default=False),
    shards: Optional[int] = typer.Option(None, "--shards", metavar="N", help=SHARDS_HELP, show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON document for machines."),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    estimate: bool = typer.Option(False, "--estimate", help="Ask the API for each job's cost preview (needs the key; starts nothing)."),
) -> None:
    """Print the expanded job graph and the exact requests; sends nothing, needs no key (except --estimate)."""
    from ..recipes.plan import plan_json, plan_text
    from ..recipes.shard import apply_shard

    sh = _parse_shard(shard, shards, _quiet(ctx))
    p, _s = _prepare(ctx, file, set_, strict)
    if sh:
        apply_shard(p, sh)
    found, totals = None, None
    if estimate:
        from ..recipes.budget import estimate_plan
        from ._common import client

        found, totals = estimate_plan(client(ctx), p)
    if as_json:
        doc = plan_json(p, sh)
        if found is not None:
            for item in doc["jobs"]:
                item["estimate"] = found[item["id"]].to_json()
            doc["estimate"] = totals.to_json()
        out_json(doc)
    else:
        text = plan_text(p, sh)
        if found is not None:
            from ..recipes.budget import estimate_text

            text += "\n" + estimate_text(p, found, totals)
        out(text)


@app.command()
def run(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The recipe (YAML).", show_default=False),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for everything the run saves [profile output_dir; default .].", show_default=False),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-j", help="Jobs running at once [profile concurrency; default 4].", show_default=False),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP, show_default=False),
    continue_on_error: bool = typer.Option(False, "--continue-on-error", help="Keep going after a job fails (its dependants are skipped)."),
    force: bool = typer.Option(False, "--force", help="Run every job again, even those already done."),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N", help="Run only shard K of N (deterministic; a job stays with what it needs); auto: from the batch engine [env SOGNI_SHARD].", show_default=False),
    shards: Optional[int] = typer.Option(None, "--shards", metavar="N", help=SHARDS_HELP, show_default=False),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the requests instead of sending them (like `plan`)."),
    retry: Optional[List[str]] = typer.Option(None, "--retry", metavar="JOB", help="Start a new workflow for these jobs (ids or globs, e.g. 'shot[mug*'; repeatable or comma-separated).", show_default=False),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Start a new workflow for every job whose last run failed or was cancelled."),
    on_exists: Optional[str] = typer.Option(None, "--on-exists", help="For every job: overwrite, suffix, skip or error (overwrite here also allows replacing another recipe's files).", show_default=False),
    budget: Optional[str] = typer.Option(None, "--budget", metavar="UNITS", help="Cap the whole run (this output folder and shard, earlier runs included) at UNITS capacity units; exit 9 listing the jobs left out.", show_default=False),
    approve_up_to: Optional[str] = typer.Option(None, "--approve-up-to", metavar="UNITS", help="Approve a cost a workflow waits for when its preview is at most UNITS.", show_default=False),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write this run to the log."),
    allow_commands: bool = typer.Option(False, "--allow-commands", help="Let chat jobs run the local commands of their function files (listed by `recipe plan`)."),
) -> None:
    """Run the jobs in dependency order; resumes from the run record in OUT/.sogni-run/."""
    from ..core.units import parse_units
    from ..recipes.run import RunOptions, run_plan
    from ..recipes.shard import apply_shard
    from ._common import client, settings

    limit = parse_units(budget, "--budget")
    up_to = parse_units(approve_up_to, "--approve-up-to")
    sh = _parse_shard(shard, shards, _quiet(ctx))
    from ..core.choices import ON_EXISTS

    if on_exists is not None and on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists value {on_exists!r}", hint="Use one of: " + ", ".join(ON_EXISTS))
    patterns = [p.strip() for item in retry or [] for p in item.split(",") if p.strip()]
    g = ctx.find_root().obj
    if dry_run or getattr(g, "dry_run", False):
        p, _s = _prepare(ctx, file, set_, strict)
        if sh:
            apply_shard(p, sh)
        from ..recipes.plan import plan_text

        out(plan_text(p, sh))
        return
    p, s0 = _prepare(ctx, file, set_, strict)
    if not allow_commands:
        from ..recipes.effects import effects, refuse_commands

        refuse_commands(effects(p), str(file))
    if sh:
        apply_shard(p, sh)
    if not p.jobs:  # nothing to send, so no key is needed (--strict made an empty glob exit 2 already)
        from ..recipes.run import touch_record

        if not s0.quiet:
            where = f" in shard {sh[0]}/{sh[1]}" if sh else ""
            err(f"Warning: {file}: no jobs to run{where}; nothing was sent.")
        touch_record(s0.out_dir(output_dir), p.name, sh)  # `recipe report` over every shard's folder still works
        return
    s = settings(ctx)
    if concurrency is None:
        concurrency = int(s.default("concurrency") or 4)
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}.")
    api = client(ctx)
    _check_patterns(p, patterns, s.quiet)
    opts = RunOptions(output_dir=s.out_dir(output_dir), concurrency=concurrency, continue_on_error=continue_on_error,
                      force=force, shard=sh, quiet=s.quiet, settings=s, retry=patterns, retry_failed=retry_failed,
                      on_exists=on_exists, budget=limit, approve_up_to=up_to)
    from ._memory import RecipeLog

    with RecipeLog(s, file, p, opts.output_dir, no_log):
        code = run_plan(api, p, opts)
    if code:
        raise ExitStatus(code)


def _check_patterns(plan, patterns: list[str], quiet: bool) -> None:
    """Every --retry pattern names a job of this run (a warning otherwise: it may be another shard's)."""
    import fnmatch

    for pat in patterns:
        if not any(fnmatch.fnmatchcase(pj.uid, pat) or fnmatch.fnmatchcase(pj.inst.job.id, pat) for pj in plan.jobs):
            if not quiet:
                err(f"Warning: --retry {pat}: no job of this run matches it.")


@app.command()
def report(
    ctx: typer.Context,
    dirs: List[Path] = typer.Argument(..., help="Output folders (or run-record .jsonl files) of one or more runs or shards.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON document for machines."),
    markdown: bool = typer.Option(False, "--markdown", help="A Markdown summary (as written to $GITHUB_STEP_SUMMARY)."),
    html_file: Optional[Path] = typer.Option(None, "--html", metavar="FILE", help="Also write one self-contained page: thumbnails, players, status, prompt, model, seed, cost.", show_default=False),
) -> None:
    """Merge the run records of several runs or shards into one summary (exit 8 when a job did not succeed)."""
    from ..recipes.report import load_records, merged_summary, summary_markdown, summary_table

    if as_json and markdown:
        raise UsageError("--json and --markdown cannot be combined.")
    if html_file is not None:
        from ..render.html_report import check_target

        check_target(html_file, [str(d) for d in dirs])
    plans: list = []
    records = load_records([str(d) for d in dirs], plans)
    summary = merged_summary(records, plans)
    names = [n for n in summary["recipes"] if n]
    if len(names) > 1:
        raise UsageError(f"These folders hold runs of different recipes ({', '.join(names)}).",
                         hint="Report each recipe's shards separately.")
    if html_file is not None:
        from ..render.html_report import write_report

        tiles = write_report(summary, records, html_file)
        if not _quiet(ctx):
            err(f"Wrote {html_file} ({tiles} tile{'s' if tiles != 1 else ''}).")
    if as_json:
        out_json(summary)
    elif markdown:
        out(summary_markdown(summary))
    else:
        out(summary_table(summary))
    if summary["failed_jobs"] or summary.get("missing_shards"):  # not succeeded, never started, shard missing
        raise ExitStatus(ExitCode.INCOMPLETE)


@app.command()
def emit(
    ctx: typer.Context,
    engine: str = typer.Argument(..., metavar="ENGINE", help="github, kubernetes, aws-batch or cloud-run.", show_default=False),
    file: Path = typer.Argument(..., help="The recipe (YAML).", show_default=False),
    shards: int = typer.Option(4, "--shards", metavar="N", help="How many shards run in parallel."),
    image: Optional[str] = typer.Option(None, "--image", help="A container image with sogni installed [default: python:3.12-slim, installing sogni at start].", show_default=False),
    output: Optional[str] = typer.Option(None, "--output", help="The folder the shards write to, one subfolder each [out on GitHub, /data/out elsewhere].", show_default=False),
) -> None:
    """Print a ready definition that runs RECIPE in N shards on a batch engine, then merges the report."""
    from ..recipes.emit import ENGINE_NAMES, emit as emit_definition

    if engine not in ENGINE_NAMES:
        raise UsageError(f"Unknown engine {engine!r}.", hint="Engines: " + ", ".join(ENGINE_NAMES) + ".")
    p, _s = _prepare(ctx, file, None, False, requests=False)
    out(emit_definition(engine, file.as_posix(), p.name, shards, image=image, output=output), end="")


@app.command()
def schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of recipe files (the one in recipes/schema.json)."""
    from ..recipes.jsonschema import build_schema

    out_json(build_schema())

