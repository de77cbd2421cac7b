"""The root ``tunewise`` command: every stage's commands mounted on one Typer app."""

from __future__ import annotations

import os

import typer

from tunewise import egress
from tunewise.cli.common import handle_errors, quiet_libraries
from tunewise.cli.data import app as data_app
from tunewise.cli.decide import decide_command
from tunewise.cli.distill import distill_command
from tunewise.cli.doctor import doctor_command
from tunewise.cli.eval import eval_command, report_command
from tunewise.cli.export import export_command
from tunewise.cli.label import app as label_app
from tunewise.cli.logs import app as logs_app
from tunewise.cli.monitor import monitor_command
from tunewise.cli.persona import persona_command
from tunewise.cli.quickstart import quickstart_command
from tunewise.cli.refresh import app as refresh_app
from tunewise.cli.serve import app as serve_app
from tunewise.cli.train import train_command

quiet_libraries()
app = typer.Typer(
    help="tunewise: does fine-tuning pay off for this task? Measure it, then train, serve and monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    no_egress: bool = typer.Option(
        False,
        "--no-egress",
        envvar=egress.ENV_VAR,
        help="Refuse every connection but loopback, Unix sockets and on-premises model hosts, before a byte is sent "
        "(as targets.self_hosted_only does for its project).",
    ),
) -> None:
    if not no_egress:
        return
    policy = egress.EgressPolicy(reason=f"{egress.ENV_VAR}=1" if egress.requested_by_env() else "--no-egress")
    with handle_errors():
        if os.environ.get("MLFLOW_TRACKING_URI"):
            egress.check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"], policy, field="$MLFLOW_TRACKING_URI")
    ctx.with_resource(egress.guard(policy))  # off again when the command ends (matters to in-process callers)


app.command("quickstart")(quickstart_command)
app.command("eval")(eval_command)
app.command("report")(report_command)
app.command("decide")(decide_command)
app.command("doctor")(doctor_command)
app.command("train")(train_command)
app.command("export")(export_command)
app.command("distill")(distill_command)
app.command("persona")(persona_command)
app.command("monitor")(monitor_command)
app.add_typer(data_app, name="data")
app.add_typer(serve_app, name="serve")
app.add_typer(logs_app, name="logs")
app.add_typer(label_app, name="label")
app.add_typer(refresh_app, name="refresh")


if __name__ == "__main__":
    app()
