"""The Snakemake logger plugin ``ablate``: the workflow profile (profiles/default) selects it, so
every run of this workflow prints through it in place of Snakemake's stream handler.

It is Snakemake's own stream handler, filter and formatter with the changes
:mod:`ablate.core.execution.terminal` describes; Snakemake's log file keeps its full format.

Its one touch of a private name, pinned to Snakemake 9.27.1 (a plugin is a package of its own, so
it stays here rather than in ``ablate.upstream``):

1. ``DefaultFormatter._format_job_info`` overridden: the lines of a job's block, each cut to
   ``width`` here; no public hook gives them. Test:
   ``tests/upstream/test_smk.py::test_job_block_lines_come_from_format_job_info``.
"""

import sys
from dataclasses import dataclass

from snakemake.logging import ColorizingTextHandler, DefaultFormatter
from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from ablate.core.execution import terminal


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    pass


class Formatter(DefaultFormatter):
    """Snakemake's formatter; ``width``: the longest line of a job's block (None: lists whole)."""

    def __init__(self, quiet=None, show_failed_logs=False, width=terminal.WIDTH):
        super().__init__(quiet, show_failed_logs)
        self.width = width

    def format_job_info(self, msg):
        reason = terminal.short_reason(msg["reason"], self.width)
        return super().format_job_info({**msg, "reason": reason})

    def _format_job_info(self, msg):
        lines = super()._format_job_info(msg)
        return [terminal.short_line(line, self.width) for line in lines] if self.width else lines

    def format_shellcmd(self, msg):
        # a script: or run: job has no shell command; printshellcmds (the SLURM and Vast
        # profiles) printed "Shell command: None" for each (the handler prints nothing for "")
        return super().format_shellcmd(msg) if msg.get("shellcmd") else ""

    def format_progress(self, msg):
        return super().format_progress(msg) + terminal.progress_note()


class LogHandler(LogHandlerBase):
    # the base's abstract properties, as the constants they are
    writes_to_stream = True
    writes_to_file = False
    has_filter = False
    has_formatter = True
    needs_rulegraph = False

    def __post_init__(self) -> None:
        s = self.common_settings
        stream = sys.stdout if s.stdout else sys.stderr
        # file lists cut to the width on a terminal only: a program reading the listing (a file,
        # a pipe) gets them whole, as Snakemake colours a terminal only
        width = terminal.WIDTH if stream.isatty() else None
        self._out = ColorizingTextHandler(
            nocolor=s.nocolor,
            stream=stream,
            formatter=Formatter(s.quiet, s.show_failed_logs, width),
        )
        self._summary = []

    def emit(self, record):
        # Snakemake's filter (has_filter is False) has let it through
        if getattr(record, terminal.SUMMARY, False):
            self._summary.append(record)  # printed last, after Snakemake's closing lines
        else:
            self._out.handle(record)

    def close(self):
        for record in self._summary:
            self._out.handle(record)
        self._summary = []
        self._out.flush()
        super().close()
