"""``fastem demo``: run every main job end to end on built-in synthetic data."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", "out_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the generated data sets, results and PNG previews.")
@click.option("--overwrite", is_flag=True,
              help="Run every job again in an existing, non-empty folder. Without it, the folder of an "
                   "interrupted demo is completed (finished jobs are skipped).")
@click.option("--quick", is_flag=True, help="Tiny sizes (a smoke test; figures are not meaningful).")
@click.option("--only", multiple=True, metavar="JOB", help="Run only these jobs (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the demo jobs and exit.")
def command(out_dir, overwrite, quick, only, list_only):
    """Generate synthetic data, run every main job on it, write outputs and PNG previews,
    and print a summary table."""
    from fastem.config import settings
    from fastem.demo import discover_jobs, format_summary, run_demo

    if list_only:
        for name, mod in discover_jobs():
            doc = (mod.__doc__ or "").strip().splitlines()
            click.echo(f"{name:<10} {doc[0] if doc else ''}")
        return
    quiet = settings.quiet  # --quiet: no progress lines, no summary table (errors still go to stderr)
    rows, failed = run_demo(out_dir, overwrite=overwrite, quick=quick, only=list(only) or None,
                            echo=(lambda text: None) if quiet else click.echo)
    if not quiet:
        click.echo("")
        click.echo(format_summary(rows))
        click.echo(f"\noutputs in {out_dir}/")
    if failed:
        reasons = [str(r.get("result", "")) for r in rows if str(r.get("result", "")).startswith("FAILED")]
        first = f" ({reasons[0][len('FAILED: '):]})" if reasons else ""
        click.echo(f"fastem: error: demo job(s) failed: {', '.join(failed)}{first}; run the same command again "
                   f"to complete the demo", err=True)
        raise SystemExit(1)
