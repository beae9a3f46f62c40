"""The tuneprep error hierarchy.

Library code raises these; the CLI turns them into one line on stderr and an exit
code in exactly one place (`curation.cli.main`). Messages are lowercase, name the
parameter in backticks, and say what was expected and how to fix it.
"""

from __future__ import annotations


class TuneprepError(Exception):
    """Base class: a problem the user can fix. `exit_code` is what the CLI returns."""

    exit_code = 2

    def lines(self) -> list[str]:
        """The message as one or more lines (a config error may hold several)."""
        return [str(self)]


class ConfigError(TuneprepError):
    """The YAML config (or a CLI option) is invalid. Holds every problem found at once."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def lines(self) -> list[str]:
        return [f"config error: {p}" for p in self.problems]


class InputError(TuneprepError):
    """An input file cannot be read at all (missing, unsupported, empty, unparseable)."""


class SchemaError(TuneprepError):
    """Data does not match the record kind's contract as a whole (not one bad row)."""


class RunError(TuneprepError):
    """A run directory is missing, incomplete or inconsistent."""


class GateFailed(TuneprepError):
    """The data failed a check, or changed since it was validated: training must not start."""

    exit_code = 1
