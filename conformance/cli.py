"""The `dynaspec` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from conformance.check_models import check_models
from conformance.manifest import ManifestError, load_manifest
from conformance.tlc_runner import ToolchainError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "specs" / "manifest.json"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """dynaspec: DynamoDB's replication design in TLA+, with a reference checked against it."""


@main.command("check-models")
@click.option("--set", "model_set", type=click.Choice(["standard", "ci", "all"]),
              default="standard", show_default=True, help="Which models of the manifest to run.")
@click.option("--model", "models", multiple=True, help="Run only this model (repeatable).")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_MANIFEST, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Where results are written.")
@click.option("--timeout", type=click.FloatRange(min=1), default=1200, show_default=True,
              help="Seconds allowed per model.")
@click.option("--update-manifest", is_flag=True,
              help="Record this run's state counts and depths in the manifest.")
@click.option("--show-traces", is_flag=True, help="Print every counterexample, mutants' too.")
def check_models_cmd(model_set: str, models: tuple[str, ...], manifest: Path, out: Path,
                     timeout: float, update_manifest: bool, show_traces: bool) -> None:
    """Model-check the specs: correct models must pass, mutants must be caught."""
    # Logs (CI) are not terminals: give the table room instead of 80 columns.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
    try:
        loaded = load_manifest(manifest)
        entries = loaded.select(model_set, list(models) or None)
        if not entries:
            raise click.UsageError(f"no model in set {model_set!r}")
        runs = check_models(loaded, entries, out_dir=out, timeout=timeout,
                            update_manifest=update_manifest, show_traces=show_traces,
                            console=console)
    except (ManifestError, ToolchainError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(0 if all(r.passed for r in runs) else 1)
