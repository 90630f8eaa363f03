"""``evidence demo``: the whole pipeline on bundled samples, on the embedded default setup."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from verification.core.claims import Claims, parse_time
from verification.core.config import Settings

if TYPE_CHECKING:
    from verification.pipeline import Context, Outcome


def demo_settings(settings: Settings) -> Settings:
    """The demo's own home (``<home>/demo``): never mixed with real evidence."""
    home = settings.home / "demo"
    return settings.model_copy(
        update={
            "home": home,
            "database_url": None,
            "store": "local",
            "store_path": None,
            "key_path": None,
        }
    )


def run_demo(settings: Settings, *, fresh: bool = False, direct: bool = False) -> int:
    """Initialise, submit the samples with their claims, process them and print the results."""
    from verification import pipeline
    from verification.cli.output import print_outcomes
    from verification.ledger.custody import initialise_ledger
    from verification.media import samples
    from verification.pipeline.submission import submit_file
    from verification.storage import open_store

    demo = demo_settings(settings)
    if fresh and demo.home.exists():
        shutil.rmtree(demo.home)
    demo.home.mkdir(parents=True, exist_ok=True)
    initialise_ledger(demo).engine.dispose()
    store = open_store(demo)

    print(f"1. Building sample submissions in {demo.home / 'samples'}")
    built = samples.build(demo.home / "samples")
    for path, sample in built:
        lat, lon = sample.claimed_location or (None, None)
        claims = Claims(
            sample.case,
            sample.submitter,
            lat,
            lon,
            parse_time(sample.claimed_time) if sample.claimed_time else None,
            sample.source_url,
            sample.shows,
        )
        submit_file(store, path, claims)
        print(f"   {sample.name:<18} {sample.case:<11} {sample.shows}")

    ctx = pipeline.open_context(demo, store=store, agents=[{"type": "operator", "name": "demo"}])
    from verification.pipeline.fixity import pin_installation_key, verify_collection

    pin_installation_key(ctx)  # as `evidence init` does
    outcomes, ran = _run(ctx, demo, direct)
    print_outcomes(outcomes)
    report = verify_collection(ctx)
    print(
        f"\ncustody: {report.items} chains, {report.events} events, {'all verified' if report.ok else 'PROBLEMS FOUND'}"
    )
    unprocessed = [o for o in outcomes if o.item is None]
    if unprocessed or not ran:
        print(
            f"\nINCOMPLETE: {len(unprocessed)} submission(s) were not processed"
            + ("" if ran else "; the intake run failed (see its log above)"),
            file=sys.stderr,
        )
    first = next((o.item for o in outcomes if o.item), None)
    env = f"EVIDENCE_HOME={demo.home} {_self_command()}"
    print("\nNext:")
    if first:
        print(f"  {env} show {first[:12]}          # one item's record and findings")
        print(f"  {env} custody log {first[:12]}   # its chain of custody")
    print(f"  {env} custody verify            # recompute every hash and signature")
    print(f"  {env} list                      # every item with its status")
    return 0 if report.ok and ran and not unprocessed else 1


def _self_command() -> str:
    """How the user can call this command again (the venv's script when it is under cwd)."""
    import os

    program = Path(sys.argv[0])
    if program.name == "evidence" and program.exists():
        relative = os.path.relpath(program.absolute())
        if not relative.startswith(".."):
            return relative
    return "evidence"


def _run(ctx: Context, demo: Settings, direct: bool) -> tuple[list[Outcome], bool]:
    """Process the demo submissions; the outcomes and whether the run itself succeeded."""
    from verification import pipeline

    keys = [info.key for info in pipeline.list_new(ctx)]
    dags = Path(__file__).resolve().parents[2] / "dags"
    airflow = Path(sys.executable).parent / "airflow"
    if direct or not (dags / "evidence_intake.py").exists() or not airflow.exists():
        print(
            "\n2. Processing incoming/ directly (preserve, hash, identify, extract, check, dedupe, record)\n"
        )
        sys.stdout.flush()
        outcomes = pipeline.process_batch(ctx, keys, workers=demo.workers)
        from verification.pipeline.views import make_views

        make_views(ctx, [o.item for o in outcomes if o.item])  # as the DAG's views task does
        return outcomes, True
    print(
        "\n2. Running the Airflow DAG evidence_intake over incoming/ (dag.test(), embedded SQLite)\n"
    )
    sys.stdout.flush()
    ran = run_intake_dag(demo, dags, airflow)
    return pipeline.recorded_outcomes(ctx, keys), ran


def run_intake_dag(demo: Settings, dags: Path, airflow: Path) -> bool:
    """Run ``evidence_intake`` once with ``dag.test()`` in its own Airflow home under the demo;
    True when the run succeeded."""
    import os
    import subprocess

    home = (demo.home / "airflow").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "EVIDENCE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "EVIDENCE_HOME": str(demo.home.resolve()),
        }
    )
    log_path = home / "demo-dag-run.log"
    with log_path.open("w") as log_file:
        if not (home / "airflow.db").exists():
            print("   (first run: creating Airflow's metadata database, about half a minute)")
            sys.stdout.flush()
            subprocess.run(
                [str(airflow), "db", "migrate"],
                env=env,
                stdout=log_file,
                stderr=log_file,
                check=False,
                timeout=600,
            )
        done = subprocess.run(
            [sys.executable, str(dags / "evidence_intake.py")],
            env=env,
            stdout=log_file,
            stderr=log_file,
            check=False,
            timeout=1800,
        )
    print(f"   DAG run {'succeeded' if done.returncode == 0 else 'FAILED'}; its log: {log_path}\n")
    return done.returncode == 0
