"""The Prefect automation that marks a flow run `Crashed` when its heartbeats stop (a worker killed, a node lost).

Without it a flow run whose process died stays `Running` for ever, and a retry is refused. Flow runs send a
heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (at least 30; scripts/prefect_local.sh sets it on the
workers); this automation crashes a run whose next heartbeat is `grace` seconds late. This is Prefect's own recipe
for self-hosted servers ("detect zombie flows"); Prefect Cloud has it built in.

    python -m flows.automations [--grace SECONDS]     # against PREFECT_API_URL; replaces an older copy
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

NAME = "videor1: crash flow runs whose heartbeats stopped"


def crash_silent_runs(grace_seconds: float) -> Automation:
    return Automation(
        name=NAME,
        description="A flow run that sent a heartbeat and then neither another one nor a final state in time has lost "
        "its process: mark it Crashed so it can be retried.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=grace_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {grace_seconds:g} s: the flow run's process is gone.",
            )
        ],
    )


def install(grace_seconds: float) -> Automation:
    try:
        Automation.read(name=NAME).delete()
    except ValueError:  # none yet
        pass
    return crash_silent_runs(grace_seconds).create()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grace",
        type=float,
        default=90.0,
        help="seconds without a heartbeat before a run counts as crashed (more than the heartbeat period)",
    )
    automation = install(parser.parse_args().grace)
    print(f"automation {automation.name!r} ({automation.id})")


if __name__ == "__main__":
    main()
