"""Snakemake, patched where this pipeline's differs, pinned to Snakemake 9.27.1 (pyproject.toml).
``rules/report.smk`` calls :func:`patch_report` (touches 1 and 2, the report) and
``rules/common.smk`` :func:`guard_deletes` (touch 3) when the Snakefile is read.

1. ``snakemake.report.html_reporter.rulegraph_spec`` replaced by
   :func:`ablate.core.reports.report_graph.rulegraph_spec`, which shows each rule once (Snakemake's
   has a node per rule and DAG level). Test: ``test_reporter_calls_its_module_rulegraph_spec``.
2. The reST directive ``embeddedimage`` registered again (:class:`_EmbeddedImage`): Snakemake's
   puts its embedding mixin second in its bases, so the page links the file, which a
   self-contained report cannot follow. Test: ``test_snakemakes_embeddedimage_links_the_file``.
3. ``Workflow.delete_output`` of the workflow being read wrapped (:func:`guard_deletes`): the
   delete commands run no hook of a run (no ``onstart``). Test:
   ``test_the_delete_commands_call_the_workflows_delete_output``.

The tests are in tests/upstream/test_smk.py; when one fails, the pinned Snakemake changed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.images import Image


class _EmbeddedImage(Image):
    """``.. embeddedimage:: file``: the image embedded as a data URI (touch 2)."""

    def run(self):
        from snakemake.report.common import data_uri_from_file

        self.arguments[0] = data_uri_from_file(self.arguments[0])
        return super().run()


def patch_report() -> None:
    """Install both patches into Snakemake's report (touches 1 and 2)."""
    # importing snakemake.report registers its own directive: ours must come after it
    import snakemake.report.html_reporter as html_reporter

    from ablate.core.reports.report_graph import rulegraph_spec

    directives.register_directive("embeddedimage", _EmbeddedImage)
    html_reporter.rulegraph_spec = rulegraph_spec


def guard_deletes(workflow: Any, guard: Callable[[bool], AbstractContextManager]) -> None:
    """Touch 3: Snakemake's delete commands on ``workflow`` run inside ``guard(dryrun)``."""
    delete = workflow.delete_output

    def delete_output(only_temp: bool = False, dryrun: bool = False) -> None:
        with guard(dryrun):
            delete(only_temp=only_temp, dryrun=dryrun)

    workflow.delete_output = delete_output
