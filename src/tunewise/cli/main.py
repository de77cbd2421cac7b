"""The root ``tunewise`` command: every stage's commands mounted on one Typer app."""

from __future__ import annotations

import typer

from tunewise.cli.common import quiet_libraries
from tunewise.cli.data import app as data_app
from tunewise.cli.decide import decide_command
from tunewise.cli.eval import eval_command, report_command
from tunewise.cli.export import export_command
from tunewise.cli.quickstart import quickstart_command
from tunewise.cli.train import train_command

quiet_libraries()
app = typer.Typer(
    help="tunewise: does fine-tuning pay off for this task? Measure it, then train, serve and monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("quickstart")(quickstart_command)
app.command("eval")(eval_command)
app.command("report")(report_command)
app.command("decide")(decide_command)
app.command("train")(train_command)
app.command("export")(export_command)
app.add_typer(data_app, name="data")


if __name__ == "__main__":
    app()
