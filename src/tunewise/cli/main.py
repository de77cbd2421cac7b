"""The root ``tunewise`` command: every stage's commands mounted on one Typer app."""

from __future__ import annotations

import importlib

import typer

from tunewise.cli.common import quiet_libraries
from tunewise.cli.eval import eval_command, report_command
from tunewise.cli.quickstart import quickstart_command

quiet_libraries()
app = typer.Typer(
    help="tunewise: does fine-tuning pay off for this task? Measure it, then train, serve and monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("quickstart")(quickstart_command)
app.command("eval")(eval_command)
app.command("report")(report_command)

# Stage sub-apps: (module, attribute, name). A Typer sub-app is mounted as a command group.
_SUB_APPS = [("tunewise.cli.data", "app", "data")]
# Single commands living in stage modules, mounted at the top level.
_COMMANDS = [
    ("tunewise.cli.train", "train_command", "train"),
    ("tunewise.cli.export", "export_command", "export"),
    ("tunewise.cli.decide", "decide_command", "decide"),
]


def _load(module_name: str, attribute: str):  # TEMPORARY while stages land
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ModuleNotFoundError, AttributeError):
        return None


for module_name, attribute, name in _SUB_APPS:
    if (sub := _load(module_name, attribute)) is not None:
        app.add_typer(sub, name=name)
for module_name, attribute, name in _COMMANDS:
    if (command := _load(module_name, attribute)) is not None:
        app.command(name)(command)


if __name__ == "__main__":
    app()
