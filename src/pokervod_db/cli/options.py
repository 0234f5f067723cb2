"""Options and arguments used by more than one command, as ``Annotated`` aliases.

A command declares ``as_json: JsonOption = False`` instead of repeating the option, so every
``--json`` has the same name, help and meaning: one JSON object on stdout (fields listed in the README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object on stdout (fields in the README)."),
]

ArchiveArgument = Annotated[
    Path,
    typer.Argument(
        help="The backup archive (a file, or a directory-format dump).", show_default=False
    ),
]

YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation."),
]
