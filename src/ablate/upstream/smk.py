"""Snakemake's report, patched where this pipeline's differs, pinned to Snakemake 9.27.1
(pyproject.toml). ``rules/report.smk`` calls :func:`patch_report` when the Snakefile is read.

1. ``snakemake.report.html_reporter.rulegraph_spec`` replaced by
   :func:`ablate.core.reports.report_graph.rulegraph_spec`: Snakemake's keeps one node per rule and
   DAG level, so ``eval_model``, whose jobs follow ``prepare_model`` and ``finetune``, showed twice;
   ours shows each rule once. The reporter calls the name it imported into its module, so the
   module's attribute is what to replace; no report setting chooses the graph. Test:
   ``test_smk.py::test_reporter_calls_its_module_rulegraph_spec``.
2. The reST directive ``embeddedimage`` registered again (:class:`EmbeddedImage`):
   ``snakemake.report``'s own ``EmbeddedImage(Image, EmbeddedMixin)`` puts its embedding mixin
   second in its bases, so docutils' ``Image.run`` runs alone and the page links the file, which
   a self-contained report cannot follow; this one reads the file into a data URI first. Test:
   ``test_smk.py::test_snakemakes_embeddedimage_links_the_file``.

When a test here fails, the pinned Snakemake changed: drop the patch it covers if upstream
fixed the behaviour, else adapt it.
"""

from __future__ import annotations

from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.images import Image


class EmbeddedImage(Image):
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

    directives.register_directive("embeddedimage", EmbeddedImage)
    html_reporter.rulegraph_spec = rulegraph_spec
